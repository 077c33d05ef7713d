"""Hostile and broken input through the real HTTP API: every case ends with its exact outcome.

One stack for the module: redis-server, the gateway and one worker (subprocesses running under the
loopback-only network guard), an input server on 127.0.0.2 (the only address the worker may fetch
from) and a canary on 127.0.0.1 and [::1] at the same port, which records any request a URL trick
would send to the wrong address. Jobs are all submitted up front and run in order on the worker;
each test then waits for its own job. The worker must still be the same process after every case.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support import media
from tests.support.hostile_server import Canary, canary_server, input_server
from tests.support.redis_server import free_port, redis_server
from tests.support.service_stack import REPO_ROOT, Stack, stack_env, start_stack, wait_for_terminal

pytestmark = pytest.mark.e2e

API_KEY = "bad-inputs-key"
# The smallest job: 3 driving frames, one 2-frame tile, one step, no unconditional pass.
PARAMS = {
    "resolution": 128,
    "num_inference_steps": 1,
    "tile_size": 2,
    "tile_overlap": 1,
    "sample_stride": 1,
    "fps": 8,
    "guidance_scale": 1.0,
    "seed": 1,
}
LIMITS = {
    "fetch_allowed_networks": "127.0.0.2/32",
    "fetch_timeout_s": 2,
    "fetch_max_image_bytes": 300_000,
    "fetch_max_video_bytes": 2_000_000,
    "max_image_pixels": 1_000_000,
    "max_video_pixels": 640 * 480,
    "max_video_duration_s": 3,
    "api_keys": API_KEY,
}
IMAGE = "{inputs}/files/person.png"
VIDEO = "{inputs}/files/drive.mp4"


@dataclass(frozen=True)
class JobCase:
    """A job the gateway accepts and the worker must finish with ``status`` (and ``code``)."""

    id: str
    image_url: str = IMAGE
    video_url: str = VIDEO
    code: str | None = None  # None: the job succeeds
    fragment: str = ""  # part of the message a user acts on

    @property
    def status(self) -> str:
        return "succeeded" if self.code is None else "failed"


def ssrf(
    case_id: str, url: str, code: str = "forbidden_address", fragment: str = "", *, as_video: bool = False
) -> JobCase:
    """A refused address; ``{case}`` in the URL marks the canary path for this case."""
    url = url.replace("{case}", case_id)
    if as_video:
        return JobCase(case_id, video_url=url, code=code, fragment=fragment)
    return JobCase(case_id, image_url=url, code=code, fragment=fragment)


JOB_CASES = [
    # Inputs that work, by the allowed address, a test host name, redirects and a rebinding name.
    JobCase("valid_inputs"),
    JobCase("allowed_name", image_url="http://inputs.example.test:{port}/files/person.png"),
    JobCase("relative_redirects", image_url="{inputs}/redirect?to=/redirect%3Fto%3D/files/person.png"),
    JobCase(
        "dns_rebinding_pinned",
        image_url="http://pinned.rebind.example.test:{port}/files/person.png?case=dns_rebinding_pinned",
    ),
    # Server-side request forgery: loopback, private, link-local, metadata, multicast, unspecified.
    ssrf("loopback_v4", "http://127.0.0.1:{port}/{case}", fragment="loopback"),
    ssrf("loopback_other", "http://127.0.0.3:{port}/{case}", fragment="loopback"),
    ssrf("localhost_name", "http://localhost:{port}/{case}", fragment="loopback"),
    ssrf("loopback_v6", "http://[::1]:{port}/{case}", fragment="loopback"),
    ssrf("mapped_v6_loopback", "http://[::ffff:127.0.0.1]:{port}/{case}", fragment="inside an IPv6 address"),
    ssrf("mapped_v6_hex", "http://[::ffff:7f00:1]:{port}/{case}", fragment="inside an IPv6 address"),
    ssrf("unspecified_v4", "http://0.0.0.0:{port}/{case}", fragment="unspecified"),
    ssrf("unspecified_v6", "http://[::]:{port}/{case}", fragment="unspecified"),
    ssrf("private_10", "http://10.0.0.1/{case}", fragment="private"),
    ssrf("private_172", "http://172.16.5.4/{case}", fragment="private"),
    ssrf("private_192", "http://192.168.0.1:8080/{case}", fragment="private"),
    ssrf("metadata_aws", "http://169.254.169.254/latest/meta-data/{case}", fragment="metadata"),
    ssrf("metadata_aws_v6", "http://[fd00:ec2::254]/{case}", fragment="metadata"),
    ssrf("metadata_alibaba", "http://100.100.100.200/{case}", fragment="carrier-grade NAT"),
    ssrf("link_local_v4", "http://169.254.1.1/{case}", fragment="link-local"),
    ssrf("link_local_v6", "http://[fe80::1]/{case}", fragment="link-local"),
    ssrf("unique_local_v6", "http://[fd12:3456::1]/{case}", fragment="private"),
    ssrf("multicast", "http://224.0.0.1/{case}", fragment="multicast"),
    ssrf("nat64_private", "http://[64:ff9b::a00:1]/{case}", fragment="inside an IPv6 address"),
    ssrf("decimal_ip", "http://2130706433:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("hex_ip", "http://0x7f000001:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("octal_ip", "http://0177.0.0.1:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("short_ip", "http://127.1:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("name_to_private", "http://private.example.test/{case}", fragment="private"),
    ssrf("name_to_metadata", "http://metadata.example.test/{case}", fragment="metadata"),
    ssrf("name_to_loopback", "http://loopback.example.test:{port}/{case}", fragment="loopback"),
    ssrf("name_to_link_local_v6", "http://linklocal6.example.test/{case}", fragment="link-local"),
    ssrf("name_to_mapped_private", "http://mapped.example.test/{case}", fragment="private"),
    ssrf("name_with_one_private_address", "http://mixed.example.test:{port}/{case}", fragment="192.168.1.10"),
    ssrf("redirect_to_loopback", "{inputs}/redirect?to=http://127.0.0.1:{port}/{case}", fragment="loopback"),
    ssrf("redirect_to_metadata", "{inputs}/redirect?to=http://169.254.169.254/{case}", fragment="metadata"),
    ssrf(
        "redirect_307_to_private_name",
        "{inputs}/redirect?status=307&to=http://private.example.test/{case}",
        fragment="private",
    ),
    ssrf("redirect_to_file_scheme", "{inputs}/redirect?to=file:///etc/passwd", "unsupported_url", "file:"),
    ssrf("redirect_to_gopher", "{inputs}/redirect?to=gopher://127.0.0.1:{port}/{case}", "unsupported_url", "gopher:"),
    ssrf("userinfo_trick", "http://inputs.example.test@127.0.0.1:{port}/{case}", "unsupported_url", "user name"),
    # Unreachable, slow, oversized and truncated downloads.
    JobCase(
        "unknown_host",
        image_url="http://no-such-host.invalid/a.png",
        code="input_unreachable",
        fragment="cannot be resolved",
    ),
    JobCase(
        "closed_port",
        image_url="http://127.0.0.2:{closed_port}/a.png",
        code="input_unreachable",
        fragment="cannot be reached",
    ),
    JobCase("http_404", image_url="{inputs}/status/404", code="input_unreachable", fragment="HTTP 404"),
    JobCase("http_500", video_url="{inputs}/status/500", code="input_unreachable", fragment="HTTP 500"),
    JobCase("redirect_loop", image_url="{inputs}/loop/0", code="input_unreachable", fragment="redirected more than"),
    JobCase("server_never_answers", image_url="{inputs}/hang", code="input_unreachable", fragment="in time"),
    JobCase(
        "server_drips",
        video_url="{inputs}/drip",
        code="input_unreachable",
        fragment="did not finish downloading within 2 s",
    ),
    JobCase("endless_body", video_url="{inputs}/endless", code="input_too_large", fragment="2,000,000-byte"),
    JobCase("declared_terabyte", image_url="{inputs}/declared-huge", code="input_too_large", fragment="300,000-byte"),
    JobCase(
        "image_over_byte_cap", image_url="{inputs}/files/noise.png", code="input_too_large", fragment="300,000-byte"
    ),
    JobCase("cut_short_download", image_url="{inputs}/cut-short", code="input_unreachable", fragment="broke off"),
    # Files that are not what they claim.
    JobCase("garbage_image", image_url="{inputs}/files/garbage.png", code="input_not_image"),
    JobCase("empty_image", image_url="{inputs}/files/empty.png", code="input_not_image", fragment="empty"),
    JobCase("truncated_image", image_url="{inputs}/files/truncated.png", code="input_not_image", fragment="truncated"),
    JobCase(
        "html_as_image", image_url="{inputs}/files/page.html", code="input_not_image", fragment="not a supported image"
    ),
    JobCase("video_as_image", image_url=VIDEO, code="input_not_image"),
    JobCase("pixel_bomb_image", image_url="{inputs}/files/bomb.png", code="input_too_large", fragment="pixels"),
    JobCase("image_as_video", video_url=IMAGE, code="input_not_video"),
    JobCase("garbage_video", video_url="{inputs}/files/garbage.mp4", code="input_not_video"),
    JobCase("empty_video", video_url="{inputs}/files/empty.mp4", code="input_not_video", fragment="empty"),
    JobCase(
        "zero_frame_video", video_url="{inputs}/files/zero_frames.avi", code="input_not_video", fragment="zero frames"
    ),
    JobCase("truncated_video_without_index", video_url="{inputs}/files/truncated.mp4", code="input_not_video"),
    JobCase("audio_only", video_url="{inputs}/files/audio.wav", code="input_not_video", fragment="only audio"),
    JobCase("video_too_long", video_url="{inputs}/files/long.mp4", code="input_too_large", fragment="limit of 3 s"),
    JobCase("video_frames_too_large", video_url="{inputs}/files/wide.mp4", code="input_too_large", fragment="704x512"),
    # Valid media without a person.
    JobCase("no_person_in_image", image_url="{inputs}/files/flat.png", code="no_person_detected"),
]


@dataclass
class World:
    stack: Stack
    client: httpx.Client
    canaries: list[Canary]
    job_ids: dict[str, str]
    worker_pid: int


def _write_inputs(directory: Path) -> None:
    media.write_image(directory / "person.png", media.person_image(200, 150, seed=1))
    media.write_video(directory / "drive.mp4", media.moving_person_frames(3, 96, 128, seed=2), fps=24)
    media.write_image(directory / "flat.png", media.flat_image(200, 150, 128))
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # ~360 kB, incompressible
    media.write_image(directory / "noise.png", noise)
    media.write_garbage(directory / "garbage.png")
    media.write_garbage(directory / "garbage.mp4")
    media.write_empty(directory / "empty.png")
    media.write_empty(directory / "empty.mp4")
    (directory / "truncated.png").write_bytes(media.truncated_png_bytes())
    (directory / "bomb.png").write_bytes(media.png_bomb_bytes(2000, 2000))  # 4 Mpx in a few kB
    (directory / "page.html").write_text("<!doctype html><title>not an image</title>")
    media.write_zero_frame_video(directory / "zero_frames.avi")
    media.write_truncated_video(directory / "truncated.mp4", faststart=False)
    media.write_audio_only(directory / "audio.wav")
    media.write_video(directory / "long.mp4", np.zeros((100, 48, 64, 3), dtype=np.uint8), fps=25)  # 4 s
    media.write_video(directory / "wide.mp4", np.zeros((2, 512, 704, 3), dtype=np.uint8), fps=25)


def _urls(template: str, inputs: str, port: int, closed_port: int) -> str:
    return template.format(inputs=inputs, port=port, closed_port=closed_port)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "inputs").mkdir()
    _write_inputs(root / "inputs")
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(root))
        inputs = stack.enter_context(input_server(root / "inputs", host="127.0.0.2"))
        port = int(inputs.rsplit(":", 1)[1])
        canaries = [
            stack.enter_context(canary_server("127.0.0.1", port)),
            stack.enter_context(canary_server("::1", port)),
        ]
        env = stack_env(redis_url=redis_url, data_dir=root / "data", model_dir=tiny_model_dir, **LIMITS)
        services = start_stack(stack, env, root, workers=["w0"])
        client = stack.enter_context(
            httpx.Client(
                base_url=services.base_url, trust_env=False, timeout=10, headers={"Authorization": f"Bearer {API_KEY}"}
            )
        )
        worker_pid = int(services.workers["w0"].process.pid)
        closed_port = free_port()
        job_ids: dict[str, str] = {}
        for case in JOB_CASES:
            body = {
                "image_url": _urls(case.image_url, inputs, port, closed_port),
                "video_url": _urls(case.video_url, inputs, port, closed_port),
                "params": PARAMS,
            }
            response = client.post("/jobs", json=body)
            assert response.status_code == 202, f"{case.id}: {response.status_code} {response.text}"
            job_ids[case.id] = response.json()["id"]
        yield World(services, client, canaries, job_ids, worker_pid)


@pytest.mark.parametrize("case", JOB_CASES, ids=[case.id for case in JOB_CASES])
def test_job_ends_with_its_exact_outcome(world: World, case: JobCase) -> None:
    job = wait_for_terminal(world.client, [world.job_ids[case.id]], timeout_s=90, stack=world.stack)[
        world.job_ids[case.id]
    ]

    error = job.get("error") or {}
    assert (job["status"], error.get("code")) == (case.status, case.code), f"{job}\n{world.stack.logs()}"
    if case.code is not None:
        assert case.fragment in error["message"], error["message"]
        assert job["output"] is None
    else:
        assert job["output"]["num_frames"] == 3
    # Nothing reached the wrong address, and the worker survived (the same process, still consuming).
    assert [hit for canary in world.canaries for hit in canary.hits_for(case.id)] == []
    assert world.stack.workers["w0"].is_running() and world.stack.workers["w0"].process.pid == world.worker_pid


# --- Requests the gateway itself refuses (or accepts) -------------------------------------------------


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


# --- The guard the service processes run under -----------------------------------------------------

GUARD_PROBE = """
import httpx, sys
from tests.support.guarded_main import install_guard
install_guard()
try:
    httpx.get(sys.argv[1], timeout=2)
except BaseException as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.0.0.1/", "ForbiddenTestTrafficError test tried to connect to 10.0.0.1"),
        ("http://169.254.169.254/", "ForbiddenTestTrafficError test tried to connect to 169.254.169.254"),
        ("http://[fd00:ec2::254]/", "ForbiddenTestTrafficError test tried to connect to fd00:ec2::254"),
        # A plain client connects by name; the guard refuses any name but localhost (no DNS leaves).
        ("http://private.example.test/", "ForbiddenTestTrafficError test connected to the name 'private.example.test'"),
        ("http://example.com/", "ForbiddenTestTrafficError test connected to the name 'example.com'"),
    ],
)
def test_service_processes_cannot_leave_loopback_even_if_the_address_guard_broke(url: str, expected: str) -> None:
    # The worker's own checks are bypassed here (a plain httpx.get): the process guard alone must stop it.
    probe = subprocess.run(
        [sys.executable, "-c", GUARD_PROBE, url], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )

    assert probe.stdout.startswith(expected), probe.stdout + probe.stderr
