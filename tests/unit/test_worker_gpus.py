"""``mimicmotion worker --gpus``: which device lists are accepted."""

import pytest

from cli.service import parse_gpus
from core.errors import ConfigurationError


@pytest.mark.parametrize(("value", "expected"), [("0", [0]), ("0,1", [0, 1]), (" 2, 3 ,", [2, 3]), ("7,0", [7, 0])])
def test_parse_gpus_accepts_distinct_device_numbers(value: str, expected: list[int]) -> None:
    assert parse_gpus(value) == expected


@pytest.mark.parametrize("value", ["", ",", "0,0", "-1", "a", "0;1", "cuda:0"])
def test_parse_gpus_refuses_anything_else(value: str) -> None:
    with pytest.raises(ConfigurationError, match="--gpus"):
        parse_gpus(value)
