"""Load: N jobs (default 1,000) through the real stack with two workers on the tiny model, smallest params.

Starts its own redis-server, gateway and workers (subprocesses under the loopback-only guard, local
storage) and an input server, all on 127.0.0.1; submits every job up front from a few client threads,
then waits (bounded by ``--timeout-s``) until every job is terminal. Prints throughput, latency
percentiles, terminal counts, and the checks: none lost, none run to completion twice.

    .venv/bin/python -m bench.load                    # from the repo root
    .venv/bin/python -m bench.load --jobs 100 --workers 2
"""

import argparse
import json
import platform
import re
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from core.contract.records import Job
from core.jobs.store import JobStore
from core.models.tiny import make_tiny_model
from tests.support.file_server import file_server
from tests.support.media import moving_person_frames, person_image, write_image, write_video
from tests.support.processes import wait_for
from tests.support.redis_server import redis_server
from tests.support.service_stack import stack_env, start_stack

# The smallest job the API accepts on the tiny model: one step, one 2-frame tile, no unconditional pass.
PARAMS = {"resolution": 128, "num_inference_steps": 1, "tile_size": 2, "tile_overlap": 1, "sample_stride": 1,
          "fps": 8, "guidance_scale": 1.0}  # fmt: skip
SUCCEEDED_LINE = re.compile(r"job ([0-9a-f]{32}): succeeded")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def submit_all(base_url: str, inputs_url: str, num_jobs: int, num_threads: int) -> list[str]:
    body = {"image_url": f"{inputs_url}/person.png", "video_url": f"{inputs_url}/drive.mp4"}

    def submit(seed: int) -> str:
        with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as client:
            response = client.post("/jobs", json={**body, "params": {**PARAMS, "seed": seed}})
            response.raise_for_status()
            return str(response.json()["id"])

    with ThreadPoolExecutor(num_threads) as pool:
        return list(pool.map(submit, range(num_jobs)))


def summarize(jobs: list[Job], job_ids: list[str], logs: str, submit_s: float) -> dict[str, Any]:
    # (created, started, finished) of every finished job; mypy then knows none is None.
    times = [(job.created_at, job.started_at or job.created_at, job.finished_at) for job in jobs
             if job.finished_at is not None]  # fmt: skip
    latencies = [(finished - created).total_seconds() for created, _, finished in times]
    waits = [(started - created).total_seconds() for created, started, _ in times]
    runs = [(finished - started).total_seconds() for _, started, finished in times]
    span_s = (max(finished for *_, finished in times) - min(job.created_at for job in jobs)).total_seconds()
    completions = Counter(SUCCEEDED_LINE.findall(logs))
    return {
        "jobs": len(job_ids),
        "terminal": dict(Counter(job.status.value for job in jobs)),
        "lost (not terminal)": len(job_ids) - len(times),
        "completed more than once (worker logs)": sum(1 for count in completions.values() if count > 1),
        "succeeded without a completion log line": sum(
            1 for job in jobs if job.status.value == "succeeded" and completions[job.id] == 0
        ),
        "started more than once (attempts > 1)": sum(1 for job in jobs if job.attempts > 1),
        "errors": dict(Counter(job.error.code for job in jobs if job.error)),
        "submit_s": round(submit_s, 2),
        "span_s (first created to last finished)": round(span_s, 2),
        "throughput_jobs_per_s": round(len(times) / span_s, 3) if span_s > 0 else None,
        "latency_s (created to finished) p50/p95/p99/max": [
            round(percentile(latencies, q), 2) for q in (50, 95, 99, 100)
        ],
        "queue_wait_s p50/p95/p99": [round(percentile(waits, q), 2) for q in (50, 95, 99)],
        "run_s (started to finished) p50/p95/p99": [round(percentile(runs, q), 3) for q in (50, 95, 99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="client threads submitting jobs")
    parser.add_argument("--timeout-s", type=float, default=1800, help="give up waiting after this long")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mm-load-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        make_tiny_model(root / "model")
        (root / "inputs").mkdir()
        write_image(root / "inputs" / "person.png", person_image(200, 150, seed=1))
        write_video(root / "inputs" / "drive.mp4", moving_person_frames(2, 96, 128, seed=2), fps=24)
        inputs_url = stack.enter_context(file_server(root / "inputs"))
        redis_url = stack.enter_context(redis_server(root))
        env = stack_env(redis_url=redis_url, data_dir=root / "data", model_dir=root / "model",
                        fetch_allowed_networks="127.0.0.0/8", max_queued_jobs_per_key=args.jobs + 1)  # fmt: skip
        services = start_stack(stack, env, root, workers=[f"w{index}" for index in range(args.workers)])
        store = JobStore.from_url(redis_url)

        started = time.monotonic()
        job_ids = submit_all(services.base_url, inputs_url, args.jobs, args.threads)
        submit_s = time.monotonic() - started

        def all_terminal() -> bool:
            counts = store.status_counts()
            return sum(counts.get(status, 0) for status in counts if status.is_terminal) >= args.jobs

        try:
            wait_for(all_terminal, timeout_s=args.timeout_s, message=f"{args.jobs} jobs", interval_s=0.5)
        except AssertionError as exc:
            print(f"NOT FINISHED: {exc}")
        jobs = [store.get(job_id) for job_id in job_ids]
        logs = "".join(path.read_text(errors="replace") for path in root.glob("w*.log"))
        result = summarize(jobs, job_ids, logs, submit_s)
        result["machine"] = f"{platform.node()} {platform.processor() or platform.machine()}"
        result["workers"] = args.workers
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
