"""Probes and metrics (/healthz, /readyz, /metrics), the Celery task sender, and the gateway's light imports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError

from core.contract.queues import ANIMATE_TASK, GPU_QUEUE
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.stage_stats import StageStatistics
from core.jobs.store import JobStore
from core.settings import Settings
from service.app import create_app
from service.queue import create_task_sender
from tests.integration.gateway.api import AUTH_A, BODY, submit
from tests.support.redis_server import free_port
from tests.support.task_senders import RecordingSender


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
    submit(client)
    submit(client)
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
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2]
    )
    assert result.returncode == 0, result.stdout + result.stderr
