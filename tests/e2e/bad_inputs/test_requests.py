"""Requests the gateway itself refuses (or accepts), each with its exact status, code and message."""

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.bad_inputs.world import World

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class RequestCase:
    id: str
    body: Any = None  # JSON-encoded unless ``raw`` is given
    raw: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 422
    code: str | None = "invalid_request"
    fragment: str = ""
    path: str = "/jobs"
    method: str = "POST"


GOOD = {"image_url": "http://127.0.0.2:9/a.png", "video_url": "http://127.0.0.2:9/b.mp4"}


JSON = (("Content-Type", "application/json"),)


def with_params(**params: Any) -> dict[str, Any]:
    return {**GOOD, "params": params}


REQUEST_CASES = [
    RequestCase("malformed_json", raw=b'{"image_url": ', headers=JSON, status=400, code="invalid_json"),
    RequestCase("json_nan_literal", raw=b'{"params": {"guidance_scale": NaN}}', headers=JSON, fragment="image_url"),
    RequestCase("empty_body", raw=b"", headers=JSON, fragment="body: Field required"),
    RequestCase("array_body", body=[GOOD], fragment="body"),
    RequestCase("string_body", body="http://127.0.0.2/a.png", fragment="body"),
    RequestCase(
        "not_json_content_type",
        raw=json.dumps(GOOD).encode(),
        headers=(("Content-Type", "text/plain"),),
        status=415,
        code="unsupported_media_type",
    ),
    RequestCase("missing_video_url", body={"image_url": GOOD["image_url"]}, fragment="video_url"),
    RequestCase("url_wrong_type", body={**GOOD, "image_url": 42}, fragment="image_url"),
    RequestCase("params_wrong_type", body={**GOOD, "params": "fast"}, fragment="params"),
    RequestCase("unknown_field", body={**GOOD, "prompt": "dance"}, fragment="prompt"),
    RequestCase("unknown_param", body=with_params(strength=1), fragment="params.strength"),
    RequestCase("resolution_too_small", body=with_params(resolution=64), fragment="allowed: 128 to 1024"),
    RequestCase("resolution_not_multiple", body=with_params(resolution=130), fragment="a multiple of 64"),
    RequestCase("steps_zero", body=with_params(num_inference_steps=0), fragment="allowed: 1 to 100"),
    RequestCase("steps_huge", body=with_params(num_inference_steps=10**9), fragment="allowed: 1 to 100"),
    RequestCase("guidance_negative", body=with_params(guidance_scale=-1), fragment="params.guidance_scale"),
    RequestCase(
        "guidance_nan",
        raw=json.dumps(with_params(guidance_scale=float("nan"))).encode(),
        headers=JSON,
        fragment="params.guidance_scale",
    ),
    RequestCase("seed_negative", body=with_params(seed=-1), fragment="params.seed"),
    RequestCase("seed_over_64_bits", body=with_params(seed=2**64), fragment="params.seed"),
    RequestCase("overlap_not_below_tile", body=with_params(tile_size=4, tile_overlap=4), fragment="tile_size"),
    RequestCase("fps_float", body=with_params(fps=7.5), fragment="params.fps"),
    # Strict numbers (issue 19): the spec says integer/number, so no strings, and no booleans (True == 1).
    RequestCase("resolution_string", body=with_params(resolution="128"), fragment="params.resolution"),
    RequestCase("tile_overlap_true", body=with_params(tile_overlap=True), fragment="params.tile_overlap"),
    RequestCase("guidance_scale_true", body=with_params(guidance_scale=True), fragment="params.guidance_scale"),
    RequestCase("guidance_scale_string", body=with_params(guidance_scale="2.5"), fragment="params.guidance_scale"),
    RequestCase("seed_string", body=with_params(seed="42"), fragment="params.seed"),
    RequestCase("steps_float_integral", body=with_params(num_inference_steps=4.0), fragment="num_inference_steps"),
    RequestCase("timeout_s_true", body={**GOOD, "timeout_s": True}, fragment="timeout_s"),
    RequestCase("timeout_s_string", body={**GOOD, "timeout_s": "30"}, fragment="timeout_s"),
    RequestCase(
        "float_param_takes_an_integer",
        body={**with_params(guidance_scale=3, noise_aug_strength=0), "metadata": {"case": "integer for float"}},
        status=202,
        code=None,
    ),
    # Nesting (issue 19): refused by an iterative count before any parser or validator recurses.
    RequestCase(
        "metadata_nested_900_deep",
        raw=json.dumps(GOOD)[:-1].encode() + b', "metadata": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}",
        headers=JSON,
        fragment="nested more than 32 levels",
    ),
    RequestCase(
        "params_nested_5000_deep",
        raw=json.dumps(GOOD)[:-1].encode() + b', "params": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
        headers=JSON,
        fragment="nested more than 32 levels",
    ),
    RequestCase(
        "brackets_inside_strings_are_not_nesting",
        body={**GOOD, "metadata": {"text": "[{" * 200 + '\\"' + "]}" * 200}},
        status=202,
        code=None,
    ),
    RequestCase(
        "body_over_64_kib", body={**GOOD, "metadata": {"x": "a" * 70_000}}, status=413, code="payload_too_large"
    ),
    RequestCase("metadata_over_4_kib", body={**GOOD, "metadata": {"x": "a" * 5000}}, fragment="metadata"),
    RequestCase(
        "metadata_too_deep", body={**GOOD, "metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, fragment="deeper"
    ),
    RequestCase("url_too_long", body={**GOOD, "image_url": "http://127.0.0.2/" + "a" * 3000}, fragment="image_url"),
    RequestCase("file_scheme", body={**GOOD, "image_url": "file:///etc/passwd"}, fragment="http or https"),
    RequestCase("ftp_scheme", body={**GOOD, "video_url": "ftp://127.0.0.2/b.mp4"}, fragment="http or https"),
    RequestCase(
        "gopher_scheme", body={**GOOD, "image_url": "gopher://127.0.0.1:6379/_FLUSHALL"}, fragment="http or https"
    ),
    RequestCase("javascript_scheme", body={**GOOD, "image_url": "javascript:alert(1)"}, fragment="http or https"),
    RequestCase("data_url", body={**GOOD, "image_url": "data:image/png;base64,iVBORw0KGgo="}, fragment="http or https"),
    RequestCase("no_scheme", body={**GOOD, "image_url": "127.0.0.2/a.png"}, fragment="http or https"),
    RequestCase("no_host", body={**GOOD, "image_url": "http:///a.png"}, fragment="host"),
    RequestCase("bad_port", body={**GOOD, "image_url": "http://127.0.0.2:99999/a.png"}, fragment="image_url"),
    RequestCase(
        "newline_in_url",
        body={**GOOD, "image_url": "http://127.0.0.2/a.png\r\nX-Injected: 1"},
        fragment="control characters",
    ),
    RequestCase("unicode_junk_url", body={**GOOD, "image_url": "\u202e\U0001f600\ufffd\u0000"}, fragment="image_url"),
    RequestCase(
        "lone_surrogate_url",
        raw=b'{"image_url": "http://\\ud800.test/a.png", "video_url": "http://a.test/b"}',
        headers=JSON,
        fragment="image_url",
    ),
    RequestCase("unknown_webhook_event", body={**GOOD, "webhook_events": ["job.exploded"]}, fragment="webhook_events"),
    RequestCase(
        "unicode_metadata_accepted",
        body={**GOOD, "metadata": {"名前": "🎉 \u0000 \u202e", "n": [1, None]}},
        status=202,
        code=None,
    ),
    RequestCase("no_api_key", body=GOOD, headers=(("Authorization", ""),), status=401, code="unauthorized"),
    RequestCase(
        "wrong_api_key", body=GOOD, headers=(("Authorization", "Bearer nope"),), status=401, code="unauthorized"
    ),
    RequestCase("unknown_job", path="/jobs/00000000000000000000000000", method="GET", status=404, code="not_found"),
    RequestCase(
        "path_traversal_job_id", path="/jobs/..%2F..%2Fetc%2Fpasswd", method="GET", status=404, code="not_found"
    ),
    RequestCase("huge_job_id", path="/jobs/" + "a" * 5000, method="GET", fragment="at most 64 characters"),
    RequestCase("cancel_unknown_job", path="/jobs/nope/cancel", status=404, code="not_found"),
    # Digits that are not ASCII digits (issue 19): "²" and "١٢" pass str.isdigit(); a 503 before.
    RequestCase("cursor_superscript_digit", path="/jobs?cursor=%C2%B2", method="GET", code="invalid_cursor"),
    RequestCase("cursor_arabic_indic_digits", path="/jobs?cursor=%D9%A1%D9%A2", method="GET", code="invalid_cursor"),
    RequestCase("cursor_fullwidth_digits", path="/jobs?cursor=%EF%BC%91", method="GET", code="invalid_cursor"),
    RequestCase("cursor_with_underscore", path="/jobs?cursor=1_0", method="GET", code="invalid_cursor"),
    RequestCase("limit_arabic_indic_digits", path="/jobs?limit=%D9%A1", method="GET", fragment="limit"),
    # A stray trailing slash (issue 19): no redirect built from the client's Host header.
    RequestCase(
        "trailing_slash_foreign_host",
        path="/jobs/",
        method="GET",
        headers=(("Host", "evil.example"),),
        status=404,
        code="not_found",
    ),
]


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[case.id for case in REQUEST_CASES])
def test_request_gets_its_exact_answer(world: World, case: RequestCase) -> None:
    headers = dict(case.headers)
    content = case.raw if case.raw is not None else (json.dumps(case.body).encode() if case.body is not None else None)
    if case.body is not None and case.raw is None:
        headers.setdefault("Content-Type", "application/json")
    request = world.client.build_request(case.method, case.path, content=content, headers=headers)
    if headers.get("Authorization") == "":
        del request.headers["Authorization"]

    response = world.client.send(request)

    assert response.status_code == case.status, response.text
    if case.code is None:
        assert response.json()["metadata"] == case.body["metadata"]
    else:
        assert response.json()["error"]["code"] == case.code, response.text
        assert case.fragment in response.json()["error"]["message"], response.text
    assert world.stack.gateway.is_running()
