"""MimicMotionPipeline on the tiny model, CPU float32: shapes, determinism, departures, hooks, fidelity."""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import JobCanceledError
from core.models.files import resolve_model_files
from core.models.loading import MimicMotionModels, load_models
from core.pipeline import conditioning
from core.pipeline.denoising import (
    TileConditioning,
    auto_tiles_per_call,
    predict_fused_noise,
    tile_frame_indices,
    tiles_per_call_for_attention,
    tiles_per_call_for_memory,
)
from core.pipeline.pipeline import MimicMotionPipeline
from core.pipeline.tiling import fusion_weights, tile_indices
from tests.support.original_schedule import run_original_schedule
from tests.support.pipeline_args import DECODE_CHUNK_SIZE, denoising_args, pipeline_args

HEIGHT, WIDTH = 48, 32  # portrait and non-square, so a transposed axis cannot pass
# 16 frames in tiles of 8 with overlap 3: two regular tiles and an appended right-aligned one.
SIZE = {"num_inference_steps": 3, "noise_aug_strength": 0.02, "tile_size": 8, "tile_overlap": 3}
SETTINGS = pipeline_args(**SIZE)


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path) -> MimicMotionModels:
    return load_models(resolve_model_files(tiny_model_dir), "cpu", torch.float32)


@pytest.fixture(scope="module")
def pipeline(models: MimicMotionModels) -> MimicMotionPipeline:
    return MimicMotionPipeline(models)


def _inputs(num_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    pose_frames = rng.integers(0, 256, (num_frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    return image, pose_frames


def test_pipeline_returns_one_uint8_frame_per_pose_frame(pipeline: MimicMotionPipeline) -> None:
    image, pose_frames = _inputs(16)
    output = pipeline(image, pose_frames, seed=1, **SETTINGS)
    assert output.frames.shape == (15, HEIGHT, WIDTH, 3)
    assert output.frames.dtype == np.uint8
    assert output.frames.std() > 1.0  # not a constant image
    assert set(output.timings) == {"conditioning", "denoising", "decoding"}


def test_pipeline_call_equals_its_three_stages_called_one_by_one(pipeline: MimicMotionPipeline) -> None:
    # A job run calls the stages itself; it must get the frames the one-call path gives, bit for bit.
    image, pose_frames = _inputs(16)
    whole = pipeline(image, pose_frames, seed=6, **SETTINGS).frames
    state = pipeline.prepare_denoising(image, pose_frames, **denoising_args(seed=6, **SIZE))
    latents = pipeline.denoise(state)
    assert latents.shape == (1, 16, 4, HEIGHT // 8, WIDTH // 8)
    frames = pipeline.decode(latents, decode_chunk_size=DECODE_CHUNK_SIZE)
    assert np.array_equal(frames, whole)


def test_denoise_refuses_a_state_it_already_denoised(pipeline: MimicMotionPipeline) -> None:
    image, pose_frames = _inputs(10)
    args = denoising_args(**{**SIZE, "seed": 1, "num_inference_steps": 1})
    state = pipeline.prepare_denoising(image, pose_frames, **args)
    pipeline.denoise(state)
    with pytest.raises(ValueError, match="already denoised: prepare_denoising makes a fresh one"):
        pipeline.denoise(state)


def test_pipeline_same_seed_same_frames_other_seed_other_frames(pipeline: MimicMotionPipeline) -> None:
    image, pose_frames = _inputs(16)
    first = pipeline(image, pose_frames, seed=7, **SETTINGS).frames
    again = pipeline(image, pose_frames, seed=7, **SETTINGS).frames
    other = pipeline(image, pose_frames, seed=8, **SETTINGS).frames
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_pipeline_matches_original_schedule(models: MimicMotionModels, pipeline: MimicMotionPipeline) -> None:
    # Fidelity (DESIGN.md): same inputs, settings and seed give the original's frames up to float
    # rounding; only truncation to uint8 may flip a value by one.
    image, pose_frames = _inputs(16)
    settings = {**SETTINGS, "seed": 3, "guidance_scale": 2.0}
    ours = pipeline(image, pose_frames, tiles_per_call=3, **settings).frames
    original = run_original_schedule(models, image, pose_frames, **settings)
    difference = np.abs(ours.astype(int) - original.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.005


def test_pipeline_batched_tiles_equal_sequential_tiles(pipeline: MimicMotionPipeline) -> None:
    image, pose_frames = _inputs(16)
    sequential = pipeline(image, pose_frames, seed=5, tiles_per_call=1, **SETTINGS).frames
    batched = pipeline(image, pose_frames, seed=5, tiles_per_call=3, **SETTINGS).frames
    assert np.abs(sequential.astype(int) - batched.astype(int)).max() <= 1


def test_fused_noise_batched_equals_sequential(models: MimicMotionModels) -> None:
    image, pose_frames = _inputs(16)
    generator = torch.Generator().manual_seed(0)
    tile_conditioning = TileConditioning(
        image_embeddings=conditioning.encode_image(models, image),
        image_latents=conditioning.encode_vae_image(models, image, 0.0, generator),
        added_time_ids=conditioning.added_time_ids(models, 0.0),
        pose_latents=conditioning.encode_poses(models, pose_frames),
        do_classifier_free_guidance=True,
    )
    latents = torch.randn((1, 16, 4, HEIGHT // 8, WIDTH // 8), generator=generator)
    tiles = tile_frame_indices(tile_indices(16, 8, 3), torch.device("cpu"))
    weights = fusion_weights(8, dtype=torch.float32)
    timestep = torch.tensor(0.5)
    with torch.no_grad():
        predictions = [
            predict_fused_noise(models.unet, latents, timestep, tile_conditioning, tiles, weights, batch)
            for batch in (1, 2, 3)
        ]
    assert predictions[0].shape == (2, 16, 4, HEIGHT // 8, WIDTH // 8)
    for batched in predictions[1:]:
        torch.testing.assert_close(batched, predictions[0], rtol=1e-5, atol=1e-6)


def test_auto_tiles_per_call_is_one_on_cpu() -> None:
    assert auto_tiles_per_call(torch.device("cpu"), num_tiles=8, num_tile_frames=72, latent_size=(128, 72), rows=2) == 1


def test_tiles_per_call_count_float32_activations_twice() -> None:
    # SVD-xt size, 72-frame tiles with guidance: the 100 MiB-per-frame figure is 16-bit activations.
    size = {"num_tiles": 8, "num_tile_frames": 72, "latent_size": (72, 128), "rows": 2}
    available = 80 * 2**30
    bfloat16 = tiles_per_call_for_memory(available, **size, dtype_bytes=2)
    assert bfloat16 == 3  # 0.6 * 80 GiB // 14.06 GiB per tile
    assert tiles_per_call_for_memory(available, **size, dtype_bytes=4) == 1  # // 28.1 GiB


def test_tiles_per_call_keep_the_temporal_attention_batch_launchable() -> None:
    # 576x1024 (72x128 latent): 9216 sequences per row and tile; CUDA grids stop at 65535.
    assert tiles_per_call_for_attention((72, 128), rows=2) == 3  # 55296; 4 tiles would be 73728
    assert tiles_per_call_for_attention((72, 128), rows=1) == 7
    assert tiles_per_call_for_attention((256, 256), rows=2) == 1  # over the limit at one tile: still 1


def test_pipeline_bfloat16_runs_close_to_float32(tiny_model_dir: Path, pipeline: MimicMotionPipeline) -> None:
    # bfloat16 keeps latents and fusion in float32 (too few mantissa bits for the fused sums); the
    # frames stay near the float32 ones, which shows every tensor reaches the model in its dtype.
    image, pose_frames = _inputs(16)
    half_models = load_models(resolve_model_files(tiny_model_dir), "cpu", torch.bfloat16)
    half = MimicMotionPipeline(half_models)(image, pose_frames, seed=2, **SETTINGS).frames
    full = pipeline(image, pose_frames, seed=2, **SETTINGS).frames
    assert np.abs(half.astype(int) - full.astype(int)).mean() < 4.0


def test_pipeline_short_video_shrinks_tile(pipeline: MimicMotionPipeline) -> None:
    # Departure: the original crashes when the video is shorter than a tile (reference §5, issues #74, #111).
    image, pose_frames = _inputs(5)
    output = pipeline(image, pose_frames, **pipeline_args(seed=1, num_inference_steps=2, tile_size=72, tile_overlap=6))
    assert output.frames.shape == (4, HEIGHT, WIDTH, 3)


def test_pipeline_guidance_one_skips_uncond_and_equals_scale_one_guidance(
    models: MimicMotionModels, pipeline: MimicMotionPipeline
) -> None:
    # Departure: the original breaks at guidance <= 1 (reference §4.1 step 1). uncond + 1 * (cond - uncond)
    # is cond, so the straightforward schedule at scale 1 must agree with our cond-only pass.
    image, pose_frames = _inputs(16)
    settings = {**SETTINGS, "seed": 4, "guidance_scale": 1.0}
    ours = pipeline(image, pose_frames, **settings).frames
    with_uncond = run_original_schedule(models, image, pose_frames, **settings)
    assert np.abs(ours.astype(int) - with_uncond.astype(int)).max() <= 1
    guided = pipeline(image, pose_frames, **{**settings, "guidance_scale": 2.0}).frames
    assert np.abs(ours.astype(int) - guided.astype(int)).mean() > 0.5


def test_pipeline_calls_on_step_once_per_step(pipeline: MimicMotionPipeline) -> None:
    image, pose_frames = _inputs(10)
    calls: list[tuple[int, int]] = []
    pipeline(image, pose_frames, seed=1, on_step=lambda step, total: calls.append((step, total)), **SETTINGS)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_pipeline_stops_when_on_step_raises_job_canceled(pipeline: MimicMotionPipeline) -> None:
    image, pose_frames = _inputs(10)
    calls: list[int] = []

    def cancel_at_two(step: int, total: int) -> None:
        calls.append(step)
        if step == 2:
            raise JobCanceledError("canceled by the caller")

    with pytest.raises(JobCanceledError, match="canceled by the caller"):  # on_step's own error, untouched
        pipeline(image, pose_frames, seed=1, on_step=cancel_at_two, **SETTINGS)
    assert calls == [1, 2]


@pytest.mark.parametrize(
    ("image", "pose_frames", "match"),
    [
        (np.zeros((HEIGHT, WIDTH, 3), np.float32), np.zeros((3, HEIGHT, WIDTH, 3), np.uint8), "image"),
        (np.zeros((HEIGHT + 4, WIDTH, 3), np.uint8), np.zeros((3, HEIGHT + 4, WIDTH, 3), np.uint8), "multiples"),
        (np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.zeros((1, HEIGHT, WIDTH, 3), np.uint8), "pose_frames"),
        (np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.zeros((3, WIDTH, HEIGHT, 3), np.uint8), "pose_frames"),
    ],
)
def test_pipeline_rejects_bad_inputs(
    pipeline: MimicMotionPipeline, image: np.ndarray, pose_frames: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        pipeline(image, pose_frames, seed=0, **SETTINGS)
