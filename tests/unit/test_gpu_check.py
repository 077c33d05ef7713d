"""bench/gpu_check.py's parsers on the lines the benchmarks and pytest really print.

The CPU samples were printed by ``python -m bench.pipeline`` (also with ``--peak-tflops``), ``python -m
bench.worker --jobs 2`` and pytest on this repository's CI box; the CUDA-only cells (peak GiB, a GPU's
name) follow bench/pipeline.py's format strings, which print them in the same columns.
"""

from bench.attention_batch import result_line
from bench.gpu_check import (
    parse_attention_batch,
    parse_bench_pipeline,
    parse_bench_worker,
    parse_pytest,
)

BENCH_PIPELINE_CPU = """\
CPU, tiny UNet, torch.float32, 2 tiles of 8 frames at 64x48 px, ours with 2 tile(s) per call
schedule   UNet calls    s/step    GFLOP/step  peak GiB     MFU
original            4     2.971           1.9       n/a     n/a
ours                1     1.160           1.5       n/a     n/a
ours / original time: 0.39
ours runs PoseNet once per job instead: 0.006 s for 10 frames
projected 35-s demo (8 tiles x 25 steps), original: 297 s denoising (at this bench's tile size and resolution)
projected 35-s demo (8 tiles x 25 steps), ours: 116 s denoising (at this bench's tile size and resolution)
"""

BENCH_PIPELINE_WITH_MFU = """\
CPU, tiny UNet, torch.float32, 2 tiles of 8 frames at 64x48 px, ours with 2 tile(s) per call
schedule   UNet calls    s/step    GFLOP/step  peak GiB     MFU
original            4     9.409           1.9       n/a    0.4%
ours                1     1.134           1.5       n/a    2.7%
ours / original time: 0.12
"""

# bench/pipeline.py's row format with CUDA's cells: f"{name:<10}{calls:>11}{s:>10.3f}{gflop:>14.1f}{gib:>10}{mfu:>8}"
BENCH_PIPELINE_CUDA = (
    "NVIDIA H200, svd-xt UNet, torch.bfloat16, 2 tiles of 72 frames at 1024x576 px, ours with 2 tile(s) per call\n"
    f"{'original':<10}{4:>11}{0.612:>10.3f}{204760.4:>14.1f}{'11.87':>10}{'33.8%':>8}\n"
    f"{'ours':<10}{1:>11}{0.405:>10.3f}{204760.1:>14.1f}{'38.02':>10}{'51.2%':>8}\n"
    "ours / original time: 0.66\n"
    "projected 35-s demo (8 tiles x 25 steps), ours: 41 s denoising\n"
)

BENCH_WORKER_CPU = """\
2 queued jobs, cpu, resolution 128, 4 steps
prefetch  finish        loop gap  GPU idle  mean gap s  loops
off       inline           10.5%      6.5%       2.815      2
on        inline           24.7%      0.6%       6.591      2
on        background       10.2%      0.1%       4.171      2
"""

PYTEST_SKIPPED = """\
sssssssssssssssss                                                        [100%]
=========================== short test summary info ============================
SKIPPED [4] tests/gpu/test_cuda_attention.py:47: needs a CUDA device; this torch build sees none
SKIPPED [1] tests/gpu/test_tile_devices.py:32: needs a CUDA device; this torch build sees none
17 skipped in 4.69s
"""

PYTEST_FAILED = """\
FAILED tests/integration/test_pipeline_dtypes.py::test_unet_timestep_dtype_follows_the_run_dtype[torch.float16]
1 failed, 11 passed, 2 deselected in 76.86s (0:01:16)
"""


def test_parse_bench_pipeline_reads_both_schedules_and_the_ratio() -> None:
    result = parse_bench_pipeline(BENCH_PIPELINE_CPU)
    assert result["setup"].startswith("CPU, tiny UNet, torch.float32")
    assert result["original"] == {
        "unet_calls": 4, "s_per_step": 2.971, "gflop_per_step": 1.9, "peak_gib": None, "mfu": None
    }  # fmt: skip
    assert result["ours"]["s_per_step"] == 1.160 and result["ours"]["unet_calls"] == 1
    assert result["ours_over_original"] == 0.39
    assert result["pose_net"] == {"seconds": 0.006, "frames": 10}
    assert result["projected_demo_s"] == {"original": 297, "ours": 116}


def test_parse_bench_pipeline_reads_mfu_and_peak_memory() -> None:
    assert parse_bench_pipeline(BENCH_PIPELINE_WITH_MFU)["ours"]["mfu"] == 0.027
    cuda = parse_bench_pipeline(BENCH_PIPELINE_CUDA)
    assert cuda["setup"].startswith("NVIDIA H200, svd-xt UNet")
    assert cuda["ours"] == {"unet_calls": 1, "s_per_step": 0.405, "gflop_per_step": 204760.1, "peak_gib": 38.02,
                            "mfu": 0.512}  # fmt: skip
    assert cuda["original"]["peak_gib"] == 11.87 and cuda["ours_over_original"] == 0.66
    assert cuda["projected_demo_s"] == {"ours": 41}


def test_parse_bench_pipeline_of_a_run_cut_short_has_no_schedules() -> None:
    assert parse_bench_pipeline("Traceback (most recent call last):\n  ...\n") == {"setup": None}


def test_parse_bench_worker_reads_every_row() -> None:
    result = parse_bench_worker(BENCH_WORKER_CPU)
    assert result["setup"] == "2 queued jobs, cpu, resolution 128, 4 steps"
    assert result["runs"] == [
        {"prefetch": "off", "finishing": "inline", "loop_gap": 0.105, "gpu_idle": 0.065, "mean_gap_s": 2.815,
         "loops": 2},
        {"prefetch": "on", "finishing": "inline", "loop_gap": 0.247, "gpu_idle": 0.006, "mean_gap_s": 6.591,
         "loops": 2},
        {"prefetch": "on", "finishing": "background", "loop_gap": 0.102, "gpu_idle": 0.001, "mean_gap_s": 4.171,
         "loops": 2},
    ]  # fmt: skip


def test_parse_pytest_reads_counts_seconds_and_skip_reasons() -> None:
    skipped = parse_pytest(PYTEST_SKIPPED)
    assert skipped["skipped"] == 17 and skipped["seconds"] == 4.69 and "passed" not in skipped
    assert skipped["skip_reasons"][0] == (
        "[4] tests/gpu/test_cuda_attention.py:47: needs a CUDA device; this torch build sees none"
    )
    failed = parse_pytest(PYTEST_FAILED)
    assert {key: failed[key] for key in ("failed", "passed", "deselected", "seconds")} == {
        "failed": 1, "passed": 11, "deselected": 2, "seconds": 76.86
    }  # fmt: skip
    assert failed["failed_tests"] == [
        "tests/integration/test_pipeline_dtypes.py::test_unet_timestep_dtype_follows_the_run_dtype[torch.float16]"
    ]


def test_parse_pytest_reads_errors_and_warnings_in_the_plural() -> None:
    result = parse_pytest("==== 3 passed, 1 error, 2 warnings in 1.50s ====\n")
    assert result == {"passed": 3, "errors": 1, "warnings": 2, "seconds": 1.5, "failed_tests": [], "skip_reasons": []}


def test_parse_attention_batch_reads_the_lines_the_probe_prints() -> None:
    text = "\n".join([
        "NVIDIA H200, torch 2.13.0, bfloat16, 5 heads of 64, 72 frames",
        result_line("FLASH_ATTENTION", 65535, ms=41.27),
        result_line("EFFICIENT_ATTENTION", 65536, error="CUDA error: invalid configuration argument"),
    ])  # fmt: skip
    result = parse_attention_batch(text)
    assert result["setup"].startswith("NVIDIA H200")
    assert result["runs"] == [
        {"backend": "FLASH_ATTENTION", "batch": 65535, "ok": True, "ms": 41.27},
        {"backend": "EFFICIENT_ATTENTION", "batch": 65536, "ok": False,
         "error": "CUDA error: invalid configuration argument"},
    ]  # fmt: skip
