"""json_nesting_depth: the gateway's count of JSON nesting, iterative, before anything parses (issue 19)."""

import json

import pytest

from service.json_depth import json_nesting_depth


@pytest.mark.parametrize(
    ("value", "depth"),
    [({}, 1), ([], 1), ({"a": [1, {"b": []}]}, 4), ("just a string", 0), (7, 0), ({"s": "[[[{{{"}, 1)],
)
def test_json_nesting_depth_counts_arrays_and_objects_not_brackets_in_strings(value: object, depth: int) -> None:
    assert json_nesting_depth(json.dumps(value).encode()) == depth


def test_json_nesting_depth_skips_escaped_quotes_inside_strings() -> None:
    assert json_nesting_depth(rb'{"s": "\"[[[", "t": "\\"}') == 1


def test_json_nesting_depth_counts_far_past_the_recursion_limit_and_stops_early() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert json_nesting_depth(body) == 100_000
    assert json_nesting_depth(body, stop_above=32) == 33
