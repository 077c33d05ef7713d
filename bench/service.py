"""Service numbers: queue latency (POST /jobs to the worker's claim) and GET /jobs/{id} throughput.

Runs against a live stack. Without ``--url`` it starts one like ``mimicmotion up`` (its own Redis,
the tiny model, local storage, a free port, everything on 127.0.0.1) and stops it afterwards; the
inputs are tiny synthetic files served from a loopback HTTP server. The GET load comes from a
second process, so the client's own work does not share the gateway's interpreter.

    .venv/bin/python -m bench.service                       # from the repo root; starts its own stack
    .venv/bin/python -m bench.service --url http://127.0.0.1:8000 --jobs 50
"""

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx

from tests.support.file_server import file_server
from tests.support.media import moving_person_frames, person_image, write_image, write_video
from tests.support.processes import mimicmotion, service_env, wait_for
from tests.support.redis_server import free_port

TINY_PARAMS = {"resolution": 128, "num_inference_steps": 2, "tile_size": 8, "tile_overlap": 2, "fps": 8}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure_queue_latency(client: httpx.Client, inputs_url: str, num_jobs: int) -> tuple[list[float], str]:
    """Submit jobs one at a time to an idle worker; seconds from created_at to started_at (the claim).

    Returns the latencies and the last job's id.
    """
    latencies, job_id = [], ""
    body = {"image_url": f"{inputs_url}/person.png", "video_url": f"{inputs_url}/drive.mp4", "params": TINY_PARAMS}
    for _ in range(num_jobs):
        job_id = client.post("/jobs", json=body).raise_for_status().json()["id"]

        def finished(job_id: str = job_id) -> dict | None:
            job = client.get(f"/jobs/{job_id}").json()
            return job if job["status"] in ("succeeded", "failed", "canceled") else None

        job = cast(dict[str, Any], wait_for(finished, timeout_s=300, message=f"job {job_id}", interval_s=0.02))
        if job["status"] != "succeeded":
            raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
        started, created = (datetime.fromisoformat(job[name]) for name in ("started_at", "created_at"))
        latencies.append((started - created).total_seconds())
    return latencies, job_id


def _get_load(
    base_url: str, job_id: str, duration_s: float, num_threads: int, results: "multiprocessing.Queue"
) -> None:
    """In a second process: ``num_threads`` clients GET the job as fast as they can for ``duration_s``."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + duration_s

    def hammer() -> None:
        local = []
        with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                client.get(f"/jobs/{job_id}").raise_for_status()
                local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=hammer) for _ in range(num_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(latencies)


def measure_get_throughput(base_url: str, job_id: str, duration_s: float, num_threads: int) -> list[float]:
    results: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(
        target=_get_load, args=(base_url, job_id, duration_s, num_threads, results)
    )
    process.start()
    latencies = results.get(timeout=duration_s + 60)
    process.join()
    return latencies


@contextmanager
def local_stack(directory: Path) -> Iterator[str]:
    """``mimicmotion up`` with a fresh data_dir, its own Redis port and a free gateway port."""
    env = service_env({
        "MIMICMOTION_DATA_DIR": str(directory / "data"), "MIMICMOTION_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MIMICMOTION_DEVICE": "cpu", "MIMICMOTION_LOG_LEVEL": "WARNING",
    })  # fmt: skip
    port = free_port()
    with mimicmotion("up", ["up", "--port", str(port)], env, directory) as up:
        wait_for(lambda: up.is_running() and "is up at" in up.log_path.read_text(), timeout_s=180, message="up")
        yield f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="A running gateway (default: start a local stack).")
    parser.add_argument("--jobs", type=int, default=20, help="Jobs for the queue-latency run.")
    parser.add_argument("--get-seconds", type=float, default=10.0, help="Duration of the GET load.")
    parser.add_argument("--get-threads", type=int, default=16, help="Concurrent GET clients.")
    args = parser.parse_args()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-service-")))
        (directory / "inputs").mkdir()
        write_image(directory / "inputs" / "person.png", person_image(200, 150, seed=1))
        write_video(directory / "inputs" / "drive.mp4", moving_person_frames(9, 96, 128, seed=2), fps=24)
        inputs_url = stack.enter_context(file_server(directory / "inputs"))
        base_url = args.url or stack.enter_context(local_stack(directory))
        with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
            latencies, job_id = measure_queue_latency(client, inputs_url, args.jobs)
        print(f"queue latency (POST -> worker claim), {len(latencies)} jobs on an idle worker:")
        print(f"  p50 {1000 * percentile(latencies, 50):.1f} ms   p99 {1000 * percentile(latencies, 99):.1f} ms   "
              f"mean {1000 * statistics.fmean(latencies):.1f} ms")  # fmt: skip
        get_latencies = measure_get_throughput(base_url, job_id, args.get_seconds, args.get_threads)
        print(f"GET /jobs/{{id}} from a second process, {args.get_threads} clients for {args.get_seconds:g} s:")
        rate = len(get_latencies) / args.get_seconds
        p50, p99 = (1000 * percentile(get_latencies, q) for q in (50, 99))
        print(f"  {rate:.0f} requests/s   p50 {p50:.1f} ms   p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
