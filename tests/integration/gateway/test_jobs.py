"""POST /jobs, GET /jobs/{id} and GET /jobs: validation, idempotency, cancel, deadlines, paging, limits and
queue failures."""

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.contract.queues import parse_queue_routes
from core.contract.records import JobStatus
from core.jobs.store import JobStore
from core.settings import Settings
from service.app import create_app
from tests.integration.gateway.api import AUTH_A, AUTH_B, BODY, stored_jobs, submit
from tests.support.task_senders import BrokenSender, RecordingSender


def test_post_job_routes_by_resolution_to_the_gpu_class_queue(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender
) -> None:
    settings = gateway_settings.model_copy(update={"queue_routes": parse_queue_routes("0=gpu-24gb,768=gpu-80gb")})
    client = TestClient(create_app(settings, store=store, task_sender=sender))
    small = submit(client, params={"resolution": 576})
    large = submit(client, params={"resolution": 1024})
    assert sender.queues == ["gpu-24gb", "gpu-80gb"]
    assert store.get(large["id"]).queue == "gpu-80gb" and store.get(small["id"]).queue == "gpu-24gb"


def test_post_job_answers_202_with_location_seed_and_queue_position(
    client: TestClient, sender: RecordingSender
) -> None:
    response = client.post(
        "/jobs", json={**BODY, "params": {"num_inference_steps": 4}, "metadata": {"n": 1}}, headers=AUTH_A
    )
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
    first = submit(client, params={"seed": 42})
    second = submit(client, headers=AUTH_B)
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
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert sender.sent == []


def test_unknown_job_and_unknown_route_are_404_json(client: TestClient) -> None:
    response = client.get("/jobs/0123456789abcdef", headers=AUTH_A)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.get("/nowhere", headers=AUTH_A)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


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


def test_cancel_stops_queued_and_running_jobs_and_refuses_finished_ones(client: TestClient, store: JobStore) -> None:
    queued, running = submit(client), submit(client)
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
    job = submit(client)
    assert client.post(f"/jobs/{job['id']}/cancel", headers=AUTH_B).status_code == 404
    assert store.get(job["id"]).status is JobStatus.queued


def test_timeout_s_sets_the_deadline_and_is_capped_by_the_server_maximum(client: TestClient) -> None:
    job = submit(client, timeout_s=120)
    created, deadline = (datetime.fromisoformat(job[name]) for name in ("created_at", "deadline_at"))
    assert (deadline - created).total_seconds() == 120
    default = submit(client)
    assert (datetime.fromisoformat(default["deadline_at"]) - datetime.fromisoformat(default["created_at"])
            ).total_seconds() == Settings().max_job_timeout_s  # fmt: skip
    for value in (0, Settings().max_job_timeout_s + 1):
        response = client.post("/jobs", json={**BODY, "timeout_s": value}, headers=AUTH_A)
        assert response.status_code == 422 and "timeout_s" in response.json()["error"]["message"]


def test_list_jobs_newest_first_with_cursor_paging(client: TestClient) -> None:
    ids = [submit(client, headers=AUTH_B if i == 2 else AUTH_A)["id"] for i in range(3)]
    client.app.state.settings.max_queued_jobs_per_key = 10  # type: ignore[attr-defined]
    ids += [submit(client)["id"] for _ in range(2)]
    mine = [ids[4], ids[3], ids[1], ids[0]]
    page = client.get("/jobs", params={"limit": 3}, headers=AUTH_A).json()
    assert [job["id"] for job in page["data"]] == mine[:3] and page["next_cursor"]
    rest = client.get("/jobs", params={"limit": 3, "cursor": page["next_cursor"]}, headers=AUTH_A).json()
    assert [job["id"] for job in rest["data"]] == mine[3:] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": 0}, "invalid_request"),
        ({"limit": 101}, "invalid_request"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ],
)
def test_list_jobs_refuses_bad_limit_and_forged_cursor(client: TestClient, query: dict[str, Any], code: str) -> None:
    response = client.get("/jobs", params=query, headers=AUTH_A)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_queued_job_limit_per_key_is_429_with_retry_after(client: TestClient, store: JobStore) -> None:
    first = submit(client)
    for _ in range(2):
        submit(client)
    response = client.post("/jobs", json=BODY, headers=AUTH_A)
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] == "too_many_queued_jobs"
    submit(client, headers=AUTH_B)  # another key has its own allowance
    store.claim(first["id"], "w1", lease_s=60)  # a running job no longer counts
    submit(client)


def test_enqueue_failure_is_503_and_fails_the_job(gateway_settings: Settings, store: JobStore) -> None:
    client = TestClient(create_app(gateway_settings, store=store, task_sender=BrokenSender()))
    response = client.post("/jobs", json=BODY, headers=AUTH_A)
    assert response.status_code == 503 and response.json()["error"]["code"] == "queue_unavailable"
    (job,) = stored_jobs(store)
    assert job.status is JobStatus.failed and job.error is not None and job.error.code == "enqueue_failed"
    assert store.queue_length() == 0


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
