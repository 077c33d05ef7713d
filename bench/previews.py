"""What a live preview costs the denoising loop, at the real size.

The loop's thread pays for ``latents_to_rgb`` on a few frames (a 4x3 matrix product, then a copy to the
host); the animated WebP encode and the upload run on a helper thread. Printed against the time of one
denoising step: measured with ``--step-s`` (e.g. from ``bench/pipeline.py --device cuda``), or the
derived anchor of field-peers.md (about 3 s per 72-frame tile-step on an A100; a job of 8 tiles does 8
of those per step), which makes the ratio an upper bound.

    .venv/bin/python bench/previews.py                       # CPU
    .venv/bin/python bench/previews.py --device cuda --step-s 2.4
"""

import argparse
import time
from collections.abc import Callable

import torch

from core.pipeline.preview import latents_to_rgb
from core.video.encode import encode_animated_webp

# The original's 35-second demo at 576x1024: 531 frames of 72x128 latents (8 tiles of 72 per step).
DEMO_FRAMES, LATENT_H, LATENT_W, DEMO_TILES = 531, 128, 72, 8
TILE_STEP_S = 3.0  # field-peers.md, derived anchor: one 72-frame tile-step on an A100 under TensorRT


def _time(fn: Callable[[], object], repeats: int, sync: Callable[[], object]) -> float:
    fn()
    sync()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--step-s", type=float, default=None, help="measured seconds of one denoising step")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cpu" and dtype is torch.float16:
        dtype = torch.float32
    estimate = torch.randn(1, DEMO_FRAMES, 4, LATENT_H, LATENT_W, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    loop_s = _time(lambda: latents_to_rgb(estimate), args.repeats, sync)
    frames = latents_to_rgb(estimate)
    encode_s = _time(lambda: encode_animated_webp(frames), max(3, args.repeats // 4), lambda: None)
    step_s = args.step_s if args.step_s is not None else TILE_STEP_S * DEMO_TILES
    source = "measured" if args.step_s is not None else f"anchor: {DEMO_TILES} tiles x {TILE_STEP_S} s"
    print(f"latents {tuple(estimate.shape)} {dtype} on {device}; preview {frames.shape}, "
          f"{len(encode_animated_webp(frames))} bytes")  # fmt: skip
    print(f"loop thread per preview  {loop_s * 1e3:8.2f} ms")
    print(f"helper thread (WebP)     {encode_s * 1e3:8.2f} ms  (beside the loop, not in it)")
    print(f"one denoising step       {step_s:8.2f} s   ({source})")
    print(f"cost per preview         {100 * loop_s / step_s:8.4f} % of a step (target < 2 %)")
    print(f"cost per step, 1 in 10   {100 * loop_s / step_s / 10:8.4f} %")


if __name__ == "__main__":
    main()
