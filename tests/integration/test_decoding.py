"""Chunked VAE decode on the tiny model, CPU float32: several chunks per decoder call give the original's frames.

The maths per chunk is the same in a batch, but not every kernel is batch-independent: the CPU Conv3d
behind the 3x1x1 time convolution rounds differently for a batch of chunks (about 2e-7 here, 2e-6 after
the whole decoder), so a value that lands that close to a uint8 step may truncate one level lower or
higher. Such flips are rare (1 value in 46,080 in the pipeline test); bigger differences would be a bug.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.models.files import resolve_model_files
from core.models.loading import MimicMotionModels, load_models
from core.pipeline.decoding import decode_latents
from core.pipeline.pipeline import MimicMotionPipeline
from tests.support.pipeline_args import pipeline_args

# 23 frames in chunks of 4: five whole chunks and a shorter last one of 3.
NUM_FRAMES, DECODE_CHUNK_SIZE = 23, 4
LATENT_SIZE = (6, 4)  # 48x32 pixels


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path) -> MimicMotionModels:
    return load_models(resolve_model_files(tiny_model_dir), "cpu", torch.float32)


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn((1, NUM_FRAMES, 4, *LATENT_SIZE), generator=generator)


def _original_decode(models: MimicMotionModels, latents: torch.Tensor, decode_chunk_size: int) -> np.ndarray:
    """The original's decode (reference §4.1 steps 13-14): one call per chunk, num_frames = chunk length."""
    vae = models.vae
    flat = 1 / vae.config["scaling_factor"] * latents.flatten(0, 1)
    chunks = [flat[start : start + decode_chunk_size] for start in range(0, len(flat), decode_chunk_size)]
    pixels = torch.cat([vae.decode(chunk, num_frames=len(chunk)).sample for chunk in chunks])
    frames = ((pixels.float() / 2 + 0.5).clamp(0, 1) * 255).to(torch.uint8)
    return frames.permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def original_frames(models: MimicMotionModels, latents: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return _original_decode(models, latents, DECODE_CHUNK_SIZE)


@pytest.fixture
def decode_calls(models: MimicMotionModels, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(frames, num_frames) of every VAE decoder call; the real decoder still runs."""
    calls: list[tuple[int, int]] = []
    decode: Callable[..., Any] = models.vae.decode

    def recording_decode(z: torch.Tensor, num_frames: int) -> Any:
        calls.append((len(z), num_frames))
        return decode(z, num_frames=num_frames)

    monkeypatch.setattr(models.vae, "decode", recording_decode)
    return calls


def test_original_decode_depends_on_the_chunk_size(
    models: MimicMotionModels, latents: torch.Tensor, original_frames: np.ndarray
) -> None:
    # The tiny decoder mixes frames within a chunk, so the equalities below are not vacuous.
    assert original_frames.std() > 10.0
    with torch.no_grad():
        one_chunk = _original_decode(models, latents, NUM_FRAMES)
    assert np.abs(one_chunk.astype(int) - original_frames.astype(int)).mean() > 1.0


@pytest.mark.parametrize(
    ("chunks_per_call", "expected_calls"),
    [
        (1, [(4, 4)] * 5 + [(3, 3)]),
        (2, [(8, 4), (8, 4), (4, 4), (3, 3)]),
        (3, [(12, 4), (8, 4), (3, 3)]),
        (50, [(20, 4), (3, 3)]),  # more than there are whole chunks
    ],
)
def test_decode_latents_batches_whole_chunks_with_the_original_frames(
    models: MimicMotionModels,
    latents: torch.Tensor,
    original_frames: np.ndarray,
    decode_calls: list[tuple[int, int]],
    chunks_per_call: int,
    expected_calls: list[tuple[int, int]],
) -> None:
    with torch.no_grad():
        frames = decode_latents(models.vae, latents, DECODE_CHUNK_SIZE, chunks_per_call)
    # Whole chunks share a call; the shorter last chunk gets its own, with its own num_frames.
    assert decode_calls == expected_calls
    assert frames.dtype == np.uint8 and frames.shape == original_frames.shape
    _assert_rounding_only(frames, original_frames)


def test_pipeline_decode_chunks_per_call_keeps_the_frames(models: MimicMotionModels) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
    pose_frames = rng.integers(0, 256, (11, 48, 32, 3), dtype=np.uint8)
    settings = pipeline_args(seed=1, num_inference_steps=2, tile_size=8, tile_overlap=3, decode_chunk_size=3)
    pipeline = MimicMotionPipeline(models)
    default = pipeline(image, pose_frames, **settings).frames
    batched = pipeline(image, pose_frames, decode_chunks_per_call=2, **settings).frames
    _assert_rounding_only(batched, default)
    with pytest.raises(ValueError, match="decode_chunks_per_call must be at least 1, got 0"):
        pipeline(image, pose_frames, decode_chunks_per_call=0, **settings)
    with pytest.raises(ValueError, match="tiles_per_call must be at least 1, got 0"):  # 0 is not "auto"
        pipeline(image, pose_frames, tiles_per_call=0, **settings)


def test_pipeline_refuses_a_bad_decode_chunk_size_before_denoising(models: MimicMotionModels) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
    pose_frames = rng.integers(0, 256, (5, 48, 32, 3), dtype=np.uint8)
    steps: list[int] = []
    settings = pipeline_args(seed=1, num_inference_steps=2, tile_size=8, tile_overlap=3, decode_chunk_size=0)
    with pytest.raises(ValueError, match="decode_chunk_size must be at least 1, got 0"):
        MimicMotionPipeline(models)(image, pose_frames, on_step=lambda step, _: steps.append(step), **settings)
    assert steps == []  # not a single denoising step spent on a job that cannot be decoded


def _assert_rounding_only(frames: np.ndarray, expected: np.ndarray) -> None:
    difference = np.abs(frames.astype(int) - expected.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.001
