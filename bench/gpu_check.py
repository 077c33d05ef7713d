"""``make gpu-check``: the GPU tests and the GPU benchmarks in one run of under 8 minutes, into one JSON report.

Runs ``pytest -m gpu tests/gpu``, ``bench.pipeline --device cuda``, ``bench.attention_batch``,
``bench.worker --device cuda`` and, when time is left, ``bench.pipeline --device cuda --channels-last
--compile``, each under its own timeout, and writes what each printed, parsed, to ``--out``. Without a
CUDA device it runs nothing and writes a report saying so. Exit status 1 when a part failed or timed out.

    .venv/bin/python -m bench.gpu_check --out .mimicmotion/gpu-check.json
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The parts' time together: with torch's import and up to 40 s of stopping a timed-out part, the
# whole check stays under 8 minutes, so it fits one 10-minute call on a lent machine with its start.
BUDGET_S = 420
OUTPUT_TAIL_CHARS = 4000
MIN_PART_S = 60  # a part is skipped when less than this (or its own timeout) is left
STOPPED_OUTPUT_S = 10  # reading what a stopped part printed


@dataclass(frozen=True)
class Part:
    """One command of the check, its timeout, and the parser of what it prints."""

    name: str
    args: list[str]  # after the Python executable
    timeout_s: int
    parse: Callable[[str], Any]
    # Best effort: skipped when less than half its timeout is left, and a timeout does not fail the check.
    optional: bool = False


_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|error|warning)s?\b")


def parse_pytest(text: str) -> dict[str, Any]:
    """pytest's last line as counts and seconds, plus the FAILED and SKIPPED lines of its ``-ra`` summary."""
    lines = text.splitlines()
    summary: dict[str, Any] = {}
    for line in reversed(lines):
        duration = re.search(r"\bin ([\d.]+)s\b", line)
        counts = _PYTEST_COUNT.findall(line)
        if duration and (counts or "no tests ran" in line):
            summary = {_PLURALS.get(word, word): int(count) for count, word in counts}
            summary["seconds"] = float(duration.group(1))
            break
    summary["failed_tests"] = [line.removeprefix("FAILED ") for line in lines if line.startswith("FAILED ")]
    summary["skip_reasons"] = [line.removeprefix("SKIPPED ") for line in lines if line.startswith("SKIPPED ")]
    return summary


_PLURALS = {"error": "errors", "warning": "warnings"}


_SCHEDULE_ROW = re.compile(r"^(original|ours)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(n/a|[\d.]+)\s+(n/a|[\d.]+%)$")


def parse_bench_pipeline(text: str) -> dict[str, Any]:
    """bench/pipeline.py's table: per schedule s/step, UNet calls, GFLOP/step, peak GiB, MFU; ours/original."""
    lines = [line.strip() for line in text.splitlines()]
    result: dict[str, Any] = {"setup": next((line for line in lines if " UNet, " in line), None)}
    for line in lines:
        row = _SCHEDULE_ROW.match(line)
        if row:
            schedule, calls, seconds, gflop, peak, mfu = row.groups()
            result[schedule] = {
                "unet_calls": int(calls), "s_per_step": float(seconds), "gflop_per_step": float(gflop),
                "peak_gib": None if peak == "n/a" else float(peak),
                "mfu": None if mfu == "n/a" else round(float(mfu.rstrip("%")) / 100, 4),
            }  # fmt: skip
        elif ratio := re.match(r"^ours / original time: ([\d.]+)$", line):
            result["ours_over_original"] = float(ratio.group(1))
        elif pose := re.match(r"^ours runs PoseNet once per job instead: ([\d.]+) s for (\d+) frames$", line):
            result["pose_net"] = {"seconds": float(pose.group(1)), "frames": int(pose.group(2))}
        elif demo := re.match(r"^projected 35-s demo \(.*\), (original|ours): (\d+) s denoising", line):
            result.setdefault("projected_demo_s", {})[demo.group(1)] = int(demo.group(2))
    return result


_WORKER_ROW = re.compile(r"^(on|off)\s+(inline|background)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+(\d+)$")


def parse_bench_worker(text: str) -> dict[str, Any]:
    """bench/worker.py's table: per prefetch / finishing setting the loop gap, GPU idle, mean gap and loops."""
    rows = []
    for line in text.splitlines():
        row = _WORKER_ROW.match(line.strip())
        if row:
            prefetch, finishing, gap, idle, mean_gap, loops = row.groups()
            rows.append({
                "prefetch": prefetch, "finishing": finishing, "loop_gap": round(float(gap) / 100, 4),
                "gpu_idle": round(float(idle) / 100, 4), "mean_gap_s": float(mean_gap), "loops": int(loops),
            })  # fmt: skip
    setup = next((line for line in text.splitlines() if " queued jobs, " in line), None)
    return {"setup": setup, "runs": rows}


def parse_attention_batch(text: str) -> dict[str, Any]:
    """bench/attention_batch.py's lines: per backend and batch, whether it ran and in how many ms."""
    runs = []
    for line in text.splitlines():
        if ran := re.match(r"^(\w+) (\d+) ok ([\d.]+) ms$", line):
            runs.append({"backend": ran.group(1), "batch": int(ran.group(2)), "ok": True, "ms": float(ran.group(3))})
        elif failed := re.match(r"^(\w+) (\d+) failed: (.*)$", line):
            runs.append({"backend": failed.group(1), "batch": int(failed.group(2)), "ok": False,
                         "error": failed.group(3)})  # fmt: skip
    return {"setup": next(iter(text.splitlines()), None), "runs": runs}


_BENCH_PIPELINE_CUDA = ["-m", "bench.pipeline", "--device", "cuda"]
# The required parts' timeouts add up to 405 s of the 420-s budget (tests: the tiny model's CUDA tests
# and one inductor compile; bench.worker: three `up` stacks of five tiny jobs); the compiled benchmark
# (SVD-xt blocks under max-autotune) gets what is left.
PARTS = (
    Part("tests", ["-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider"], 180, parse_pytest),
    Part("bench_pipeline", _BENCH_PIPELINE_CUDA, 75, parse_bench_pipeline),
    Part("attention_batch", ["-m", "bench.attention_batch"], 30, parse_attention_batch),
    Part("bench_worker", ["-m", "bench.worker", "--device", "cuda"], 120, parse_bench_worker),
    Part("bench_pipeline_compiled", [*_BENCH_PIPELINE_CUDA, "--channels-last", "--compile"], 240,
         parse_bench_pipeline, optional=True),
)  # fmt: skip


def run_part(part: Part, timeout_s: float) -> dict[str, Any]:
    """Run one part in its own process group (bench.worker starts a stack), killed whole at the timeout."""
    command = [sys.executable, *part.args]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    timed_out = False
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
        output = _rest_of_output(process)
    return {
        "name": part.name, "command": " ".join(part.args), "optional": part.optional, "rc": process.returncode,
        "timed_out": timed_out,
        "timeout_s": round(timeout_s), "seconds": round(time.perf_counter() - started, 1),
        "results": part.parse(output), "output_tail": output[-OUTPUT_TAIL_CHARS:],
    }  # fmt: skip


def _rest_of_output(process: subprocess.Popen[str]) -> str:
    """What the stopped part printed; a process it started in a session of its own may keep the pipe open."""
    try:
        return process.communicate(timeout=STOPPED_OUTPUT_S)[0]
    except subprocess.TimeoutExpired as exc:  # the pipe's holder lives on: keep what came so far
        partial = exc.output or b""
        return partial.decode(errors="replace") if isinstance(partial, bytes) else partial


def _kill_group(process: subprocess.Popen[str]) -> None:
    # SIGTERM first: `mimicmotion up` (bench.worker's stack) then stops the children it started in
    # sessions of their own; SIGKILL whatever is left.
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def torch_and_device() -> tuple[str, str | None]:
    """torch's version and the first CUDA device's name (None where this build sees no CUDA device)."""
    import torch  # here, so that --help and the parsers need no torch

    return torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def run_check(parts: tuple[Part, ...], budget_s: float) -> list[dict[str, Any]]:
    """Each part in order, each within its timeout and what is left of ``budget_s``."""
    deadline = time.perf_counter() + budget_s
    results = []
    for part in parts:
        left = deadline - time.perf_counter()
        if left < min(MIN_PART_S, part.timeout_s) or (part.optional and left < part.timeout_s / 2):
            results.append({"name": part.name, "command": " ".join(part.args), "skipped": f"{left:.0f} s left"})
            continue
        print(f"gpu-check: {part.name} (at most {min(part.timeout_s, left):.0f} s)", flush=True)
        results.append(run_part(part, min(part.timeout_s, left)))
    return results


def failed_part(part: dict[str, Any]) -> bool:
    """A part failed if it exited non-zero or, unless it is best effort, ran out of time."""
    if "skipped" in part:
        return False
    if part["timed_out"]:
        return not part["optional"]
    return part["rc"] != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".mimicmotion/gpu-check.json"))
    parser.add_argument("--budget-s", type=float, default=BUDGET_S)
    args = parser.parse_args(argv)
    torch_version, device = torch_and_device()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "torch": torch_version, "device": device,
    }  # fmt: skip
    if device is None:
        report.update(cuda=False, reason=f"no CUDA device: torch {torch_version} sees none; nothing ran", parts=[])
        print(f"gpu-check: {report['reason']}")
    else:
        started = time.perf_counter()
        report.update(cuda=True, budget_s=args.budget_s, parts=run_check(PARTS, args.budget_s))
        report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu-check: report in {args.out}")
    failed = [part["name"] for part in report["parts"] if failed_part(part)]
    if failed:
        print(f"gpu-check: failed or timed out: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
