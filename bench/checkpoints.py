"""What denoising checkpoints cost the loop, and what they save when a worker is lost at a given step.

The loop's thread pays for one device-to-host copy of the latents per checkpoint; ``torch.save`` and the
(atomic) store run on a helper thread. Both are measured here at the real size, on local storage, with
``DenoisingCheckpoints`` itself. The step time is ``--step-s`` (measured, e.g. from ``bench/pipeline.py
--device cuda``) or the derived anchor of field-peers.md (about 3 s per 72-frame tile-step on an A100; the
35-s demo does 8 tiles a step), which makes the overhead ratio an upper bound on faster cards.

GPU-seconds repeated after a kill at step k: without checkpoints the retry denoises steps 1..k again; with
them only the steps since the last checkpoint (at most one interval), simulated with the same due-time rule.
A kill while uploading repeats the decode and the encode without the result checkpoint (``--decode-s``,
``--encode-s``: a job's ``timings``), nothing with it.

    .venv/bin/python bench/checkpoints.py                                  # CPU
    .venv/bin/python bench/checkpoints.py --device cuda --step-s 2.4 --kill-at 20
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from core.execution.checkpoints import DenoisingCheckpoints
from core.settings import Settings
from core.storage import LocalStorage

# The original's 35-second demo at 576x1024: 531 frames + the reference, 72x128 latents, 8 tiles per step.
DEMO_FRAMES, LATENT_H, LATENT_W, DEMO_TILES = 532, 128, 72, 8
TILE_STEP_S = 3.0  # field-peers.md, derived anchor: one 72-frame tile-step on an A100 under TensorRT


def checkpoint_steps(total_steps: int, step_s: float, interval_s: float) -> list[int]:
    """The steps after which a checkpoint is written: the first step past each interval, and the last."""
    steps, due = [], interval_s
    for step in range(1, total_steps + 1):
        if step * step_s >= due or step == total_steps:
            steps.append(step)
            due = step * step_s + interval_s
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step-s", type=float, default=None, help="measured seconds of one denoising step")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--kill-at", type=int, default=23, help="the step the worker is lost after")
    parser.add_argument("--interval-s", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--decode-s", type=float, default=None, help="a job's timings.decoding (kill while uploading)")
    parser.add_argument("--encode-s", type=float, default=None, help="a job's timings.encoding (kill while uploading)")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # float32: the latents' dtype under bfloat16 models (and on CPU)
    latents = torch.randn(1, DEMO_FRAMES, 4, LATENT_H, LATENT_W, device=device)

    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(Settings(data_dir=Path(tmp)))
        checkpoints = DenoisingCheckpoints(storage, "bench", "fingerprint", Path(tmp), interval_s=1e-9)
        copy_s, write_s = [], []
        for step in range(1, args.repeats + 1):
            sync()
            started = time.perf_counter()
            checkpoints.on_latents(step, args.repeats + 1, latents)  # the loop's share: the host copy
            copy_s.append(time.perf_counter() - started)
            checkpoints.close()  # the helper thread's write, timed in its stats
            checkpoints._stopped = False  # a bench re-arms the same writer
            write_s.append(checkpoints.stats.write_seconds - sum(write_s))
        size = checkpoints.stats.bytes_written // max(1, checkpoints.stats.written)

    loop_s = sorted(copy_s)[len(copy_s) // 2]
    helper_s = sorted(write_s)[len(write_s) // 2]
    step_s = args.step_s if args.step_s is not None else TILE_STEP_S * DEMO_TILES
    source = "measured" if args.step_s is not None else f"anchor: {DEMO_TILES} tiles x {TILE_STEP_S} s"
    steps_per_checkpoint = max(1.0, args.interval_s / step_s)
    saved_at = [step for step in checkpoint_steps(args.steps, step_s, args.interval_s) if step <= args.kill_at]
    last = saved_at[-1] if saved_at else 0
    print(f"latents {tuple(latents.shape)} float32 on {device}: checkpoint {size / 2**20:.1f} MiB")
    print(f"loop thread per checkpoint  {loop_s * 1e3:9.2f} ms  (device-to-host copy)")
    print(f"helper thread per checkpoint {helper_s * 1e3:8.2f} ms  (torch.save + atomic store, beside the loop)")
    print(f"one denoising step          {step_s:9.2f} s   ({source})")
    print(f"cost per checkpoint         {100 * loop_s / step_s:9.4f} % of the step it follows")
    print(f"cost per step, every {args.interval_s:.0f} s  {100 * loop_s / step_s / steps_per_checkpoint:9.4f} %"
          " (target < 1 %)")  # fmt: skip
    print(f"killed after step {args.kill_at} of {args.steps}, checkpoints at steps {saved_at or 'none'}:")
    print(f"  GPU-seconds repeated without checkpoints  {args.kill_at * step_s:9.1f} s  (steps 1..{args.kill_at})")
    repeated = f"steps {last + 1}..{args.kill_at}" if last < args.kill_at else "none"
    print(f"  GPU-seconds repeated with checkpoints     {(args.kill_at - last) * step_s:9.1f} s  "
          f"({repeated}; at most one interval)")  # fmt: skip
    if args.decode_s is not None and args.encode_s is not None:
        print(f"killed while uploading: seconds repeated without the result checkpoint "
              f"{args.decode_s + args.encode_s:.1f} s (decode + encode), with it 0 s")  # fmt: skip


if __name__ == "__main__":
    main()
