"""GPU idle between queued jobs: the time from one job's last denoising step to the next job's first.

Starts a stack like ``mimicmotion up`` (own Redis, a real worker process, loopback only), submits
``--jobs`` jobs at once, and reads the worker's JSON log: ``denoising ...`` opens a job's loop and
``denoised in`` closes it. Loop gap = sum of gaps / (first loop start .. last loop end). Part of each
gap is still GPU work (one job's VAE decode, the next job's conditioning with PoseNet, from the
jobs' own timings); what remains is the GPU idle. Runs with prefetch and background finishing both
off, prefetch alone, then both on. CPU: the tiny model. CUDA: set MIMICMOTION_MODEL_DIR and
``--device cuda``.

    .venv/bin/python -m bench.worker                                  # CPU, tiny model
    MIMICMOTION_MODEL_DIR=/models .venv/bin/python -m bench.worker --device cuda --resolution 576 --steps 25
"""

import argparse
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from core.contract.stages import Stage
from tests.support.file_server import file_server
from tests.support.media import moving_person_frames, person_image, write_image, write_video
from tests.support.processes import ServiceProcess, mimicmotion, service_env, wait_for
from tests.support.redis_server import free_port


@contextmanager
def local_stack(directory: Path, extra: dict[str, str]) -> Iterator[tuple[str, ServiceProcess]]:
    """``mimicmotion up`` (gateway, worker, own Redis) with ``extra`` settings; yields its URL and process."""
    env = service_env({
        "MIMICMOTION_DATA_DIR": str(directory / "data"), "MIMICMOTION_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        **extra,
    })  # fmt: skip
    port = free_port()
    with mimicmotion("up", ["up", "--port", str(port)], env, directory) as up:
        wait_for(lambda: up.is_running() and "is up at" in up.log_path.read_text(), timeout_s=180, message="up")
        yield f"http://127.0.0.1:{port}", up


def loop_spans(log_text: str) -> list[tuple[datetime, datetime]]:
    """(start, end) of every denoising loop in the log, in order."""
    spans, start = [], None
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        message = record.get("message", "")
        if message.startswith("denoising "):
            start = datetime.fromisoformat(record["ts"])
        elif message.startswith("denoised in") and start is not None:
            spans.append((start, datetime.fromisoformat(record["ts"])))
            start = None
    return spans


def _finished(client: httpx.Client, job_id: str) -> dict | None:
    job = client.get(f"/jobs/{job_id}").json()
    return job if job["status"] in ("succeeded", "failed", "canceled") else None


@dataclass
class Result:
    loop_gap: float  # share of the span between denoising loops
    gpu_idle: float  # the same, less the GPU stages that fall in the gaps
    mean_gap_s: float
    loops: int


# GPU work between two denoising loops: the earlier job's decode, the later job's conditioning.
GPU_STAGES_AFTER_LOOP, GPU_STAGES_BEFORE_LOOP = (Stage.decoding,), (Stage.conditioning,)


def run(directory: Path, inputs_url: str, args: argparse.Namespace, prefetch: bool, finish: bool) -> Result:
    extra = {
        "MIMICMOTION_PREFETCH": str(prefetch).lower(), "MIMICMOTION_FINISH_IN_BACKGROUND": str(finish).lower(),
        "MIMICMOTION_LOG_FORMAT": "json",
        "MIMICMOTION_DEVICE": args.device, "MIMICMOTION_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
    }  # fmt: skip
    if os.environ.get("MIMICMOTION_MODEL_DIR"):
        extra["MIMICMOTION_MODEL_DIR"] = os.environ["MIMICMOTION_MODEL_DIR"]
    body = {
        "image_url": f"{inputs_url}/person.png", "video_url": f"{inputs_url}/drive.mp4",
        "params": {"resolution": args.resolution, "num_inference_steps": args.steps, "tile_size": args.tile_size,
                   "tile_overlap": 2, "fps": 8, "seed": 1},
    }  # fmt: skip
    stack = local_stack(directory, extra)
    with stack as (base_url, up), httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        ids = [client.post("/jobs", json=body).raise_for_status().json()["id"] for _ in range(args.jobs)]
        jobs = []
        for job_id in ids:
            job = wait_for(lambda job_id=job_id: _finished(client, job_id), timeout_s=900, message=f"job {job_id}")
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job_id}: {job['error']}")
            jobs.append(job)
        spans = loop_spans(up.log_path.read_text())
    # One worker runs the jobs in submission order, so loop k belongs to job k.
    jobs.sort(key=lambda job: job["started_at"])
    gaps = [(later[0] - earlier[1]).total_seconds() for earlier, later in itertools.pairwise(spans)]
    gpu_in_gaps = [
        sum(earlier["timings"].get(stage, 0.0) for stage in GPU_STAGES_AFTER_LOOP)
        + sum(later["timings"].get(stage, 0.0) for stage in GPU_STAGES_BEFORE_LOOP)
        for earlier, later in itertools.pairwise(jobs)
    ]
    total = (spans[-1][1] - spans[0][0]).total_seconds()
    idle = sum(max(0.0, gap - gpu) for gap, gpu in zip(gaps, gpu_in_gaps, strict=True))
    return Result(sum(gaps) / total, idle / total, sum(gaps) / max(1, len(gaps)), len(spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=33, help="driving video frames (24 fps, stride 2)")
    args = parser.parse_args()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-worker-")))
        (directory / "inputs").mkdir()
        write_image(directory / "inputs" / "person.png", person_image(200, 150, seed=1))
        write_video(directory / "inputs" / "drive.mp4", moving_person_frames(args.frames, 96, 128, seed=2), fps=24)
        inputs_url = stack.enter_context(file_server(directory / "inputs"))
        print(f"{args.jobs} queued jobs, {args.device}, resolution {args.resolution}, {args.steps} steps")
        print(f"{'prefetch':<10}{'finish':<12}{'loop gap':>10}{'GPU idle':>10}{'mean gap s':>12}{'loops':>7}")
        for prefetch, finish in ((False, False), (True, False), (True, True)):
            name = f"{prefetch}-{finish}"
            (directory / name).mkdir()
            result = run(directory / name, inputs_url, args, prefetch, finish)
            print(f"{'on' if prefetch else 'off':<10}{'background' if finish else 'inline':<12}"
                  f"{result.loop_gap:>10.1%}{result.gpu_idle:>10.1%}{result.mean_gap_s:>12.3f}{result.loops:>7}")


if __name__ == "__main__":
    main()
