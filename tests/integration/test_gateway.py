"""The gateway over real Redis and local storage: jobs, auth, paging, limits, files, probes, metrics.

The task sender is a recorder (the queue hand-off is tested by the worker's tests); everything
else is the real thing: JobStore on a test-owned redis-server, local storage under tmp_path.
"""

import json
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
import redis
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError
from pydantic import SecretStr

from core.contract.queues import ANIMATE_TASK, GPU_QUEUE, parse_queue_routes
from core.contract.records import JobError, JobOutput, JobStatus, Progress, Stage
from core.errors import ConfigurationError
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.stage_stats import StageStatistics
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import LocalStorage, create_storage
from service.app import create_app
from service.queue import create_task_sender
from tests.support.redis_server import free_port

KEY_A, KEY_B = "key-a-0123456789", "key-b-9876543210"
AUTH_A, AUTH_B = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
BODY = {"image_url": "https://example.com/person.png", "video_url": "https://example.com/dance.mp4"}


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.queues: list[str] = []

    def send_animate(self, job_id: str, *, queue: str = "gpu") -> None:
        self.sent.append(job_id)
        self.queues.append(queue)


class BrokenSender:
    def send_animate(self, job_id: str, *, queue: str = "gpu") -> None:
        raise ConnectionError("broker down")


@pytest.fixture
def gateway_settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url, data_dir=tmp_path / "data", public_url="http://testserver",
        api_keys=SecretStr(f"{KEY_A}, {KEY_B}"), max_queued_jobs_per_key=3,
    )


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def client(gateway_settings: Settings, store: JobStore, sender: RecordingSender) -> TestClient:
    return TestClient(create_app(gateway_settings, store=store, task_sender=sender))


def _submit(client: TestClient, headers: dict[str, str] = AUTH_A, **body: Any) -> dict[str, Any]:
    response = client.post("/jobs", json={**BODY, **body}, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _succeed(store: JobStore, storage: LocalStorage, job_id: str, tmp_path: Path) -> None:
    """Play the worker: store two result files as it does, then record the output."""
    stored = {}
    for name, data in (("output.mp4", b"video-bytes"), ("pose.mp4", b"pose-bytes")):
        (tmp_path / name).write_bytes(data)
        stored[name] = storage.put_file(f"jobs/{job_id}/{name}", tmp_path / name, "video/mp4")
    store.claim(job_id, "w1", lease_s=60)
    video = stored["output.mp4"]
    output = JobOutput(video_key=video.key, pose_video_key=stored["pose.mp4"].key, width=64, height=112,
                       num_frames=4, fps=15, duration_s=4 / 15, size_bytes=video.size_bytes, sha256=video.sha256)
    store.transition(job_id, JobStatus.succeeded, worker="w1", output=output, timings={"pose": 0.5})


# POST /jobs and GET /jobs/{id}
def test_post_job_routes_by_resolution_to_the_gpu_class_queue(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender
) -> None:
    settings = gateway_settings.model_copy(update={"queue_routes": parse_queue_routes("0=gpu-24gb,768=gpu-80gb")})
    client = TestClient(create_app(settings, store=store, task_sender=sender))
    small = _submit(client, params={"resolution": 576})
    large = _submit(client, params={"resolution": 1024})
    assert sender.queues == ["gpu-24gb", "gpu-80gb"]
    assert store.get(large["id"]).queue == "gpu-80gb" and store.get(small["id"]).queue == "gpu-24gb"


def test_post_job_answers_202_with_location_seed_and_queue_position(
    client: TestClient, sender: RecordingSender
) -> None:
    response = client.post("/jobs", json={**BODY, "params": {"num_inference_steps": 4}, "metadata": {"n": 1}},
                           headers=AUTH_A)
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert len(job["id"]) == 32 and job["status"] == "queued" and job["queue_position"] == 0
    assert job["params"]["num_inference_steps"] == 4 and isinstance(job["params"]["seed"], int)
    assert job["params"]["resolution"] == 576 and job["metadata"] == {"n": 1}
    assert job["webhook_events"] == ["job.started", "job.succeeded", "job.failed", "job.canceled"]
    assert sender.sent == [job["id"]]
    fetched = client.get(f"/jobs/{job['id']}", headers=AUTH_A).json()
    assert fetched == job


def test_post_job_keeps_a_given_seed_and_counts_queue_positions(client: TestClient) -> None:
    first = _submit(client, params={"seed": 42})
    second = _submit(client, headers=AUTH_B)
    assert first["params"]["seed"] == 42
    assert second["queue_position"] == 1


def test_out_of_range_param_is_422_naming_field_and_range(client: TestClient, sender: RecordingSender) -> None:
    response = client.post("/jobs", json={**BODY, "params": {"num_inference_steps": 101}}, headers=AUTH_A)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "params.num_inference_steps" in error["message"] and "1 to 100" in error["message"]
    assert error["details"][0]["field"] == "params.num_inference_steps"
    assert sender.sent == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "video_url": "file:///etc/passwd"}, "video_url"),
        ({"image_url": BODY["image_url"]}, "video_url"),
        ({**BODY, "params": {"tile_size": 8, "tile_overlap": 8}}, "params.tile_overlap"),
        ({**BODY, "params": {"steps": 4}}, "params.steps"),
        ({**BODY, "webhook_events": ["job.done"]}, "webhook_events.0"),
    ],
)
def test_invalid_body_is_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/jobs", json=body, headers=AUTH_A)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


def test_malformed_json_is_400_and_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post("/jobs", content=b'{"image_url": ', headers={**AUTH_A, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    response = client.post("/jobs", content=b"image_url=x", headers={**AUTH_A, "Content-Type": "text/plain"})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    response = client.post("/jobs", content=b"[1]", headers={**AUTH_A, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "body"


def test_oversized_body_is_refused_before_parsing(client: TestClient, sender: RecordingSender) -> None:
    huge = b'{"metadata": {"k": "' + b"x" * 100_000 + b'"}}'
    response = client.post("/jobs", content=huge, headers={**AUTH_A, "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        yield huge

    response = client.post("/jobs", content=chunks(), headers={**AUTH_A, "Content-Type": "application/json"})
    assert response.status_code == 400 and sender.sent == []


def test_unknown_job_and_unknown_route_are_404_json(client: TestClient) -> None:
    response = client.get("/jobs/0123456789abcdef", headers=AUTH_A)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.get("/nowhere", headers=AUTH_A)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# Idempotency-Key
def test_idempotency_key_same_body_returns_the_same_job(client: TestClient, sender: RecordingSender) -> None:
    headers = {**AUTH_A, "Idempotency-Key": "order-17"}
    first = client.post("/jobs", json={**BODY, "metadata": {"a": 1}}, headers=headers)
    again = client.post("/jobs", json={"metadata": {"a": 1}, **BODY}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["location"] == first.headers["location"]
    assert sender.sent == [first.json()["id"]]
    other_key = client.post(
        "/jobs", json={**BODY, "metadata": {"a": 1}}, headers={**AUTH_B, "Idempotency-Key": "order-17"}
    )
    assert other_key.json()["id"] != first.json()["id"]  # keys are scoped to the caller


def test_idempotency_key_with_another_body_is_409(client: TestClient) -> None:
    headers = {**AUTH_A, "Idempotency-Key": "order-18"}
    client.post("/jobs", json=BODY, headers=headers)
    response = client.post("/jobs", json={**BODY, "params": {"seed": 1}}, headers=headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "idempotency_conflict"


def test_idempotency_key_is_released_when_the_queue_is_down(gateway_settings: Settings, store: JobStore) -> None:
    headers = {**AUTH_A, "Idempotency-Key": "order-19"}
    broken = TestClient(create_app(gateway_settings, store=store, task_sender=BrokenSender()))
    assert broken.post("/jobs", json=BODY, headers=headers).status_code == 503
    sender = RecordingSender()
    working = TestClient(create_app(gateway_settings, store=store, task_sender=sender))
    response = working.post("/jobs", json=BODY, headers=headers)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert sender.sent == [response.json()["id"]]


# Cancel
def test_cancel_stops_queued_and_running_jobs_and_refuses_finished_ones(client: TestClient, store: JobStore) -> None:
    queued, running = _submit(client), _submit(client)
    store.claim(running["id"], "w1", lease_s=60)
    for job in (queued, running):
        response = client.post(f"/jobs/{job['id']}/cancel", headers=AUTH_A)
        assert response.status_code == 200
        assert response.json()["status"] == "canceled" and response.json()["finished_at"]
    assert store.queue_length() == 0 and not store.is_held(running["id"])  # the worker stops at its next step
    again = client.post(f"/jobs/{queued['id']}/cancel", headers=AUTH_A)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
    assert "canceled" in again.json()["error"]["message"]


def test_cancel_of_another_keys_job_is_404_and_leaves_it_alone(client: TestClient, store: JobStore) -> None:
    job = _submit(client)
    assert client.post(f"/jobs/{job['id']}/cancel", headers=AUTH_B).status_code == 404
    assert store.get(job["id"]).status is JobStatus.queued


# Server-Sent Events
def _events(text: str) -> list[tuple[str, int, dict[str, Any]]]:
    events = []
    for frame in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":"))
        events.append((fields["event"], int(fields["id"].split("-")[0]), json.loads(fields["data"])))
    return events


def test_events_stream_follows_the_job_until_it_finishes(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender
) -> None:
    class WatchedStore(JobStore):
        read = threading.Event()
        num_reads = 0

        def get(self, job_id: str, *, owner: str | None = None) -> Any:
            job = super().get(job_id, owner=owner)
            WatchedStore.num_reads += 1
            if WatchedStore.num_reads == 2:  # the handler's ownership check, then the stream's first read
                self.read.set()
            return job

    watched = WatchedStore(store.db)
    app = create_app(gateway_settings, store=watched, task_sender=sender)
    app.state.sse_poll_s = 0.01
    client = TestClient(app)
    job = _submit(client)

    def work() -> None:  # plays the worker once the stream has seen the queued job
        assert WatchedStore.read.wait(timeout=10)
        store.claim(job["id"], "w1", lease_s=60)
        store.update_running(job["id"], "w1", progress=Progress(stage=Stage.denoising, step=1, total_steps=4))
        store.transition(job["id"], JobStatus.failed, worker="w1", error=JobError(code="no_person_detected",
                                                                                  message="no person"))

    worker = threading.Thread(target=work)
    worker.start()
    response = client.get(f"/jobs/{job['id']}/events", headers=AUTH_A)
    worker.join(timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events[0][0] == "status" and events[0][2]["status"] == "queued"
    assert events[-1][0] == "status" and events[-1][2]["error"]["code"] == "no_person_detected"
    assert [event_id for _, event_id, _ in events] == list(range(1, len(events) + 1))


def test_events_resume_after_last_event_id_without_repeating_and_end_after_the_terminal_event(
    client: TestClient, store: JobStore
) -> None:
    client.app.state.sse_poll_s = 0.01  # type: ignore[attr-defined]
    job = _submit(client)
    store.claim(job["id"], "w1", lease_s=60)
    store.transition(job["id"], JobStatus.canceled)
    first = client.get(f"/jobs/{job['id']}/events", headers=AUTH_A)
    frames = [frame for frame in first.text.strip().split("\n\n")]
    assert len(frames) == 1 and "event: status" in frames[0] and '"status":"canceled"' in frames[0]
    last_id = next(line[4:] for line in frames[0].splitlines() if line.startswith("id: "))
    # The client saw the terminal state: resuming after it ends at once, with nothing repeated.
    resumed = client.get(f"/jobs/{job['id']}/events", headers={**AUTH_A, "Last-Event-ID": last_id})
    assert resumed.status_code == 200 and resumed.text == ""
    # A client that saw an older state gets the current one, numbered after its last id.
    stale = client.get(f"/jobs/{job['id']}/events", headers={**AUTH_A, "Last-Event-ID": "7-000000000000"})
    events = _events(stale.text)
    assert [(kind, event_id, data["status"]) for kind, event_id, data in events] == [("status", 8, "canceled")]
    # Ids it never sent are ignored: the stream starts over.
    assert _events(client.get(f"/jobs/{job['id']}/events", headers={**AUTH_A, "Last-Event-ID": "x"}).text)[0][1] == 1


def test_timeout_s_sets_the_deadline_and_is_capped_by_the_server_maximum(client: TestClient) -> None:
    job = _submit(client, timeout_s=120)
    created, deadline = (datetime.fromisoformat(job[name]) for name in ("created_at", "deadline_at"))
    assert (deadline - created).total_seconds() == 120
    default = _submit(client)
    assert (datetime.fromisoformat(default["deadline_at"]) - datetime.fromisoformat(default["created_at"])
            ).total_seconds() == Settings().max_job_timeout_s  # fmt: skip
    for value in (0, Settings().max_job_timeout_s + 1):
        response = client.post("/jobs", json={**BODY, "timeout_s": value}, headers=AUTH_A)
        assert response.status_code == 422 and "timeout_s" in response.json()["error"]["message"]


def test_events_of_unknown_or_another_keys_job_are_404(client: TestClient) -> None:
    job = _submit(client)
    for job_id, headers in (("0" * 32, AUTH_A), (job["id"], AUTH_B)):
        response = client.get(f"/jobs/{job_id}/events", headers=headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# Auth
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY_A}"}, {"Authorization": KEY_A}]
)
def test_missing_or_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for response in (client.post("/jobs", json=BODY, headers=headers), client.get("/jobs", headers=headers)):
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_another_keys_job_is_404_and_not_listed(client: TestClient, store: JobStore) -> None:
    job = _submit(client, headers=AUTH_A)
    assert client.get(f"/jobs/{job['id']}", headers=AUTH_B).status_code == 404
    assert client.get("/jobs", headers=AUTH_B).json() == {"data": [], "next_cursor": None}
    assert store.get(job["id"]).owner not in (KEY_A, "anonymous") and len(store.get(job["id"]).owner) == 16


def test_no_keys_means_anonymous_on_loopback_and_refusal_elsewhere(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender
) -> None:
    open_settings = gateway_settings.model_copy(update={"api_keys": ()})
    client = TestClient(create_app(open_settings, store=store, task_sender=sender))
    job = _submit(client, headers={})
    assert store.get(job["id"]).owner == "anonymous"
    for host in ("0.0.0.0", "192.168.1.4", "example.com"):
        with pytest.raises(ConfigurationError, match="MIMICMOTION_API_KEYS"):
            create_app(open_settings.model_copy(update={"host": host}), store=store, task_sender=sender)


# GET /jobs
def test_list_jobs_newest_first_with_cursor_paging(client: TestClient) -> None:
    ids = [_submit(client, headers=AUTH_B if i == 2 else AUTH_A)["id"] for i in range(3)]
    client.app.state.settings.max_queued_jobs_per_key = 10  # type: ignore[attr-defined]
    ids += [_submit(client)["id"] for _ in range(2)]
    mine = [ids[4], ids[3], ids[1], ids[0]]
    page = client.get("/jobs", params={"limit": 3}, headers=AUTH_A).json()
    assert [job["id"] for job in page["data"]] == mine[:3] and page["next_cursor"]
    rest = client.get("/jobs", params={"limit": 3, "cursor": page["next_cursor"]}, headers=AUTH_A).json()
    assert [job["id"] for job in rest["data"]] == mine[3:] and rest["next_cursor"] is None


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"cursor": "not-a-cursor"}])
def test_list_jobs_refuses_bad_limit_and_forged_cursor(client: TestClient, query: dict[str, Any]) -> None:
    response = client.get("/jobs", params=query, headers=AUTH_A)
    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("invalid_request", "invalid_cursor")


# Limits and queue failures
def test_queued_job_limit_per_key_is_429_with_retry_after(client: TestClient, store: JobStore) -> None:
    first = _submit(client)
    for _ in range(2):
        _submit(client)
    response = client.post("/jobs", json=BODY, headers=AUTH_A)
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] == "too_many_queued_jobs"
    _submit(client, headers=AUTH_B)  # another key has its own allowance
    store.claim(first["id"], "w1", lease_s=60)  # a running job no longer counts
    _submit(client)


def test_enqueue_failure_is_503_and_fails_the_job(gateway_settings: Settings, store: JobStore) -> None:
    client = TestClient(create_app(gateway_settings, store=store, task_sender=BrokenSender()))
    response = client.post("/jobs", json=BODY, headers=AUTH_A)
    assert response.status_code == 503 and response.json()["error"]["code"] == "queue_unavailable"
    (job,) = _stored_jobs(store)
    assert job.status is JobStatus.failed and job.error is not None and job.error.code == "enqueue_failed"
    assert store.queue_length() == 0


def _stored_jobs(store: JobStore) -> list[Any]:
    keys = list(store.db.client.scan_iter(match=store.db.keys.job("*")))
    return [store.get(key.split(":")[-1]) for key in keys]


def test_unexpected_exception_is_500_internal_error_without_traceback(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender, caplog: pytest.LogCaptureFixture
) -> None:
    class ExplodingStore(JobStore):
        def list_jobs(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internals")

    app = create_app(gateway_settings, store=ExplodingStore(store.db), task_sender=sender)
    response = TestClient(app, raise_server_exceptions=False).get("/jobs", headers=AUTH_A)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "secret internals" in caplog.text


# Results and /files
def test_succeeded_job_has_fresh_signed_urls_that_download(
    client: TestClient, store: JobStore, gateway_settings: Settings, tmp_path: Path
) -> None:
    storage = create_storage(gateway_settings)  # as the worker builds it: same directory, same signing key
    assert isinstance(storage, LocalStorage)
    job = _submit(client)
    _succeed(store, storage, job["id"], tmp_path)
    shown = client.get(f"/jobs/{job['id']}", headers=AUTH_A).json()
    assert shown["status"] == "succeeded" and shown["queue_position"] is None
    output = shown["output"]
    assert (output["width"], output["height"], output["num_frames"], output["fps"]) == (64, 112, 4, 15)
    assert output["expires_at"] and shown["timings"] == {"pose": 0.5}
    video = client.get(output["video_url"])  # no API key: the signature is the credential
    assert video.status_code == 200 and video.content == b"video-bytes"
    assert client.get(output["pose_video_url"]).content == b"pose-bytes"
    assert client.get(_with_query(output["video_url"], signature="0" * 64)).status_code == 403
    assert client.get(_with_query(output["video_url"], expires="1000")).status_code == 403
    assert output["video_url"].startswith(f"http://testserver/files/jobs/{job['id']}/output.mp4?")
    forged = output["video_url"].replace(f"{job['id']}/output.mp4", f"{job['id']}/pose.mp4")
    assert client.get(forged).status_code == 403
    assert client.get(output["video_url"].replace("/output.mp4", "/../output.mp4")).status_code in (403, 404)
    storage.delete(f"jobs/{job['id']}/output.mp4")
    gone = client.get(output["video_url"])
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))


# Probes and metrics
def test_healthz_is_always_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_waits_for_a_live_worker_and_warns_about_the_tiny_model(client: TestClient, store: JobStore) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["missing"] == ["worker"] and response.json()["redis"] == "ok"
    WorkerHeartbeats(store.db).record("gpu0@host", {"device": "cpu", "tiny_model": True}, ttl_s=30)
    response = client.get("/readyz")
    assert response.status_code == 200
    ready = response.json()
    assert ready["status"] == "ready" and ready["workers"] == ["gpu0@host"] and ready["tiny_model"] is True
    assert "tiny random model" in ready["warning"]


def test_job_routes_answer_503_when_redis_is_gone(gateway_settings: Settings, sender: RecordingSender) -> None:
    dead = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    client = TestClient(create_app(gateway_settings, store=dead, task_sender=sender))
    for response in (client.post("/jobs", json=BODY, headers=AUTH_A), client.get("/jobs", headers=AUTH_A)):
        assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable"
    assert sender.sent == []
    assert "mimicmotion_store_up 0.0" in client.get("/metrics").text


def test_readyz_is_503_when_redis_is_gone(gateway_settings: Settings, sender: RecordingSender) -> None:
    dead = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    response = TestClient(create_app(gateway_settings, store=dead, task_sender=sender)).get("/readyz")
    assert response.status_code == 503
    assert response.json()["missing"] == ["redis", "worker"] and response.json()["redis"].startswith("unavailable")


def test_metrics_export_jobs_queue_workers_stages_and_requests(client: TestClient, store: JobStore) -> None:
    _submit(client)
    _submit(client)
    StageStatistics(store.db).record({"denoising": 42.0, "pose": 0.2})
    WorkerHeartbeats(store.db).record("w1", {"tiny_model": False}, ttl_s=30)
    text = client.get("/metrics").text
    assert 'mimicmotion_jobs{status="queued"} 2.0' in text
    assert "mimicmotion_queue_depth 2.0" in text and "mimicmotion_running_jobs 0.0" in text
    assert "mimicmotion_live_workers 1.0" in text and "mimicmotion_store_up 1.0" in text
    assert 'mimicmotion_stage_seconds_bucket{le="30.0",stage="denoising"} 0.0' in text
    assert 'mimicmotion_stage_seconds_bucket{le="60.0",stage="denoising"} 1.0' in text
    assert 'mimicmotion_stage_seconds_bucket{le="+Inf",stage="pose"} 1.0' in text
    assert 'mimicmotion_stage_seconds_sum{stage="denoising"} 42.0' in text
    assert 'mimicmotion_http_requests_total{method="POST",route="/jobs",status="202"} 2.0' in text


def test_celery_sender_puts_the_job_id_on_the_gpu_queue_and_fails_fast_without_broker(redis_url: str) -> None:
    create_task_sender(Settings(redis_url=redis_url)).send_animate("0123abcd")
    (raw,) = redis.Redis.from_url(redis_url).lrange(GPU_QUEUE, 0, -1)
    message = json.loads(raw)
    assert message["headers"]["task"] == ANIMATE_TASK and message["headers"]["argsrepr"] == "['0123abcd']"
    create_task_sender(Settings(redis_url=redis_url)).send_animate("4567cdef", queue="gpu-80gb")
    (raw,) = redis.Redis.from_url(redis_url).lrange("gpu-80gb", 0, -1)
    assert json.loads(raw)["headers"]["argsrepr"] == "['4567cdef']"
    dead = create_task_sender(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(OperationalError):
        dead.send_animate("0123abcd")


def test_gateway_imports_no_torch_onnxruntime_or_av() -> None:
    code = (
        "import sys, service.app, service.server\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'av', 'cv2', 'diffusers') if m in sys.modules]\n"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
