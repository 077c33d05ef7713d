"""Which fused SDPA kernels launch at which temporal-attention batch on this CUDA device, in bfloat16.

SVD's temporal attention runs rows * k * h * w sequences of T frames; core/pipeline/denoising.py caps
tiles per call so that batch stays within 65535 (``_MAX_ATTENTION_BATCH``), the launch-grid axis the
flash and memory-efficient kernels used. This probes the batches around the cap, so a torch upgrade
shows whether the cap is still needed. One line per backend and batch: ``BACKEND BATCH ok MS ms`` or
``BACKEND BATCH failed: ERROR``.

    .venv/bin/python -m bench.attention_batch
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# 576x1024: 9216 sequences per row and tile. The cap's bound, one past it, 4 tiles with guidance (what
# one tile more than the cap allows would launch) and 5 tiles (what an H200 planned before the cap).
BATCHES = (55296, 65535, 65536, 73728, 92160)
TILE_FRAMES, HEADS, HEAD_DIM = 72, 5, 64  # SVD-xt's first-level temporal attention
BACKENDS = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION)


def probe(backend: SDPBackend, batch: int) -> str:
    """One line: whether ``backend`` runs SDPA at ``batch`` sequences, and in how many milliseconds."""
    try:
        query = torch.randn((batch, HEADS, TILE_FRAMES, HEAD_DIM), device="cuda", dtype=torch.bfloat16)
        with sdpa_kernel([backend]):
            F.scaled_dot_product_attention(query, query, query)  # warm-up
            torch.cuda.synchronize()
            started = time.perf_counter()
            F.scaled_dot_product_attention(query, query, query)
            torch.cuda.synchronize()
        return result_line(backend.name, batch, ms=(time.perf_counter() - started) * 1e3)
    except RuntimeError as exc:  # a launch failure ("invalid configuration argument") or no such kernel
        return result_line(backend.name, batch, error=str(exc).splitlines()[0])


def result_line(backend: str, batch: int, *, ms: float | None = None, error: str | None = None) -> str:
    """``BACKEND BATCH ok MS ms`` or ``BACKEND BATCH failed: ERROR``, the lines bench.gpu_check parses."""
    return f"{backend} {batch} ok {ms:.2f} ms" if error is None else f"{backend} {batch} failed: {error}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this probe measures CUDA kernels")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bfloat16, {HEADS} heads of {HEAD_DIM}, "
          f"{TILE_FRAMES} frames")  # fmt: skip
    for backend in BACKENDS:
        for batch in args.batches:
            print(probe(backend, batch), flush=True)


if __name__ == "__main__":
    main()
