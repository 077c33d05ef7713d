"""Training on the tiny model, on CPU: prepare-data, triplets, the loss, dropout, overfitting, checkpoints, resume.

Videos are small generated clips (64x64, 12 frames); clips are 4 frames at 64x64 (8x8 latents).
"""

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cli.main import main
from core.animate import Animator, animate
from core.contract.params import JobParams
from core.models.files import CHECKPOINT_FILE, SVD_DIR, resolve_model_files
from core.pipeline.pipeline import MimicMotionPipeline
from core.pose.align import align_pose
from core.pose.draw import draw_pose
from core.pose.wholebody import WholebodyEstimator
from core.settings import get_settings
from core.training.data_prep import prepare_data, read_manifest
from core.training.dataset import SampleConfig, TripletDataset, crop_alignment
from core.training.distributed import DistributedContext
from core.training.masks import hand_mask, latent_loss_weights
from core.training.pose_store import load_poses
from core.training.trainer import TrainConfig, Trainer, load_training_models
from core.video.decode import read_image, read_video_frames
from core.video.frames import resize_and_crop
from tests.support.media import flat_image, moving_person_frames, person_image, write_image, write_video

pytestmark = pytest.mark.usefixtures("isolated_cli_settings")

CLIP = SampleConfig(num_frames=4, resolution=64, hand_threshold=0.04)  # tiny-model hand scores start at 0.05
TRAIN_FLAGS = [
    "--num-frames", "4", "--resolution", "64", "--num-workers", "0", "--no-gradient-checkpointing",
    "--learning-rate", "1e-3", "--warmup-steps", "2", "--checkpoint-every", "2", "--log-every", "1",
    "--device", "cpu", "--hand-threshold", "0.04",
]  # fmt: skip


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("videos")
    write_video(directory / "dancer-a.mp4", moving_person_frames(12, 64, 64, seed=1), fps=24)
    (directory / "more").mkdir()
    write_video(directory / "more" / "dancer-b.mp4", moving_person_frames(12, 64, 64, seed=2), fps=24)
    write_video(directory / "empty-room.mp4", np.stack([flat_image(64, 64, 90)] * 12), fps=24)
    return directory


@pytest.fixture(scope="module")
def data_dir(tiny_model_dir: Path, videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    flags = ["--videos", str(videos_dir), "--out", str(out), "--model-dir", str(tiny_model_dir)]
    assert main(["prepare-data", *flags, "--device", "cpu", "--sample-stride", "1", "--min-frames", "4"]) == 0
    return out


@pytest.fixture
def trainer(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> Trainer:
    config = TrainConfig(
        data_dir=data_dir, model_dir=tiny_model_dir, out_dir=tmp_path / "run", sample=CLIP, learning_rate=1e-3,
        warmup_steps=0, gradient_checkpointing=False, device="cpu",
    )  # fmt: skip
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    return Trainer(config, load_training_models(config, context.device), context)


@pytest.fixture
def batch(data_dir: Path) -> dict[str, torch.Tensor]:
    """Two fixed samples, one per video."""
    dataset = TripletDataset(read_manifest(data_dir), data_dir, CLIP)
    samples = [dataset[(0, 0)], dataset[(1, 0)]]
    return {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}


def test_prepare_data_stores_every_sampled_pose_losslessly_and_skips_videos_without_a_person(
    tiny_model_dir: Path, videos_dir: Path, data_dir: Path
) -> None:
    manifest = read_manifest(data_dir)
    assert [video.name for video in manifest.videos] == ["dancer-a.mp4", "more/dancer-b.mp4"]
    assert [skipped["name"] for skipped in manifest.skipped] == ["empty-room.mp4"]
    assert "exactly one" in manifest.skipped[0]["reason"]
    entry = manifest.videos[0]
    assert (entry.num_samples, entry.num_usable, entry.stride) == (12, 12, 1)
    # The stored arrays are exactly what DWPose gave, in float64 (no rendering, no rounding).
    decoded = read_video_frames(videos_dir / "dancer-a.mp4", sample_stride=1)
    estimator = WholebodyEstimator.from_model_files(resolve_model_files(tiny_model_dir), device="cpu")
    expected = estimator.estimate_batch(list(decoded.frames))
    stored, frame_indices, usable = load_poses(data_dir / entry.poses)
    assert list(frame_indices) == list(range(12)) and usable.all()
    for got, want in zip(stored, expected, strict=True):
        for field in dataclasses.fields(want):
            np.testing.assert_array_equal(getattr(got, field.name), getattr(want, field.name))
            assert getattr(got, field.name).dtype == getattr(want, field.name).dtype


def test_prepare_data_resumes_without_redoing_prepared_videos(
    tiny_model_dir: Path, videos_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    estimator = WholebodyEstimator.from_model_files(resolve_model_files(tiny_model_dir), device="cpu")
    outcomes: dict[str, str] = {}
    prepare_data(videos_dir, copy, estimator, sample_stride=1, min_frames=4, on_video=outcomes.__setitem__)
    assert outcomes["dancer-a.mp4"] == "already prepared"
    assert outcomes["more/dancer-b.mp4"] == "already prepared"
    assert outcomes["empty-room.mp4"].startswith("skipped")


def test_triplet_puts_the_reference_and_its_pose_at_frame_zero_with_hand_weights(data_dir: Path) -> None:
    manifest = read_manifest(data_dir)
    video = manifest.videos[0]
    poses, _, _ = load_poses(data_dir / video.poses)
    decoded = read_video_frames(Path(video.video), sample_stride=1)
    crop = crop_alignment((64, 64), (64, 64))

    sample = TripletDataset(manifest, data_dir, CLIP).make_sample(video, poses, reference=9, window=[2, 3, 4])

    frames, pose_frames, weights = sample["frames"].numpy(), sample["pose_frames"].numpy(), sample["loss_weights"]
    assert frames.shape == pose_frames.shape == (4, 64, 64, 3)
    for position, index in enumerate([9, 2, 3, 4]):
        np.testing.assert_array_equal(frames[position], resize_and_crop(decoded.frames[index], 64, 64))
    np.testing.assert_array_equal(pose_frames[0], draw_pose(align_pose(poses[9], crop), 64, 64))
    assert pose_frames[1:].any()
    # Weights at latent resolution: 1 on the reference frame, 10 inside confident-hand boxes elsewhere.
    assert weights.shape == (4, 8, 8)
    assert torch.all(weights[0] == 1) and torch.all(weights[1:].amax(dim=(1, 2)) == 10)
    masks = np.stack([hand_mask(align_pose(poses[i], crop), 64, 64, 0.04) for i in [9, 2, 3, 4]])
    np.testing.assert_array_equal(weights.numpy(), latent_loss_weights(masks, 10.0))
    # Tiny-model hands always have some scores below 0.5: at the default threshold nothing is amplified.
    strict = TripletDataset(manifest, data_dir, dataclasses.replace(CLIP, hand_threshold=0.5))
    assert torch.all(strict.make_sample(video, poses, reference=9, window=[2, 3, 4])["loss_weights"] == 1)


def test_dataset_items_are_determined_by_index_and_epoch(data_dir: Path) -> None:
    dataset = TripletDataset(read_manifest(data_dir), data_dir, CLIP)
    first, again, other_epoch = dataset[(0, 0)], dataset[(0, 0)], dataset[(0, 1)]
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other_epoch[key]) for key in first)


def test_loss_equals_the_edm_weighted_loss_computed_the_long_way(
    trainer: Trainer, batch: dict[str, torch.Tensor]
) -> None:
    with torch.no_grad():
        outputs = trainer.forward(batch, torch.Generator().manual_seed(5))
    sigma = outputs.sigmas.view(-1, 1, 1, 1, 1).double()
    noisy = outputs.latents.double() + sigma * outputs.noise.double()
    denoised = noisy / (sigma**2 + 1) - sigma / torch.sqrt(sigma**2 + 1) * outputs.model_output.double()
    weights = outputs.loss_weights[:, :, None].double()
    long_way = (weights * (sigma**2 + 1) / sigma**2 * (denoised - outputs.latents.double()) ** 2).mean()
    torch.testing.assert_close(outputs.loss.double(), long_way, rtol=1e-4, atol=0)
    assert outputs.loss_weights.max() == 10  # the hand weights really entered this loss


def _record_unet_inputs(trainer: Trainer) -> tuple[list[dict[str, Any]], Any]:
    calls: list[dict[str, Any]] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample, _, image_embeddings = args[:3]
        calls.append({"sample": sample, "image_embeddings": image_embeddings, "pose": kwargs["pose_latents"]})

    return calls, trainer.module.unet.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("cond_drop_prob", [0.0, 1.0])
def test_dropped_conditions_reach_the_unet_as_zeros_and_kept_ones_do_not(
    trainer: Trainer, batch: dict[str, torch.Tensor], cond_drop_prob: float
) -> None:
    # Pose latents are zero at step 0 (zero-initialised projection) only for a fresh PoseNet; the tiny
    # checkpoint's PoseNet is random, so a kept pose is non-zero.
    trainer.config = dataclasses.replace(trainer.config, cond_drop_prob=cond_drop_prob)
    calls, handle = _record_unet_inputs(trainer)
    with torch.no_grad():
        outputs = trainer.forward(batch, torch.Generator().manual_seed(0))
    handle.remove()
    (call,) = calls
    dropped = cond_drop_prob == 1.0
    assert torch.equal(outputs.keep, torch.full((2,), 0.0 if dropped else 1.0))
    for row in range(2):
        reference_latent = call["sample"][row, :, 4:]  # (F, 4, h, w): the concatenated reference latent
        for tensor in (reference_latent, call["image_embeddings"][row], call["pose"][row]):
            assert (tensor.abs().max() == 0) == dropped
        assert call["sample"][row, :, :4].abs().max() > 0  # the noisy latents are never dropped


def test_a_few_dozen_steps_overfit_one_batch_and_the_checkpoint_animates_like_the_memory_model(
    trainer: Trainer, batch: dict[str, torch.Tensor], tiny_model_dir: Path, tmp_path: Path
) -> None:
    # 1. Overfit: the same sample, sigma and noise every step.
    one = {key: value[:1] for key, value in batch.items()}
    losses = [trainer.step(one, torch.Generator().manual_seed(0)) for _ in range(20)]
    assert losses[-1] < losses[0] / 5, losses
    # 2. The checkpoint in a model directory, loaded by `mimicmotion animate` as it is.
    checkpoint_dir = trainer.save()
    model_dir = tmp_path / "trained-model"
    model_dir.mkdir()
    for name in (SVD_DIR, "DWPose"):
        (model_dir / name).symlink_to(tiny_model_dir / name)
    shutil.copy(checkpoint_dir / CHECKPOINT_FILE, model_dir / CHECKPOINT_FILE)
    image = write_image(tmp_path / "person.png", person_image(200, 150, seed=1))
    video = write_video(tmp_path / "drive.mp4", moving_person_frames(9, 96, 128, seed=2), fps=24)
    flags = ["--resolution", "128", "--num-inference-steps", "2", "--tile-size", "8", "--tile-overlap", "2",
             "--sample-stride", "2", "--seed", "7", "--device", "cpu"]  # fmt: skip
    out = tmp_path / "frames"
    args = ["animate", "--model-dir", str(model_dir), "--image", str(image), "--video", str(video), "--out", str(out)]
    assert main([*args, *flags]) == 0
    from_file = np.stack([np.asarray(Image.open(path)) for path in sorted(out.glob("*.png"))])
    # 3. The same animation from the trained modules still in memory.
    in_memory = trainer.models
    in_memory.unet.eval()
    in_memory.pose_net.eval()
    animator = Animator(
        estimator=WholebodyEstimator.from_model_files(resolve_model_files(model_dir), device="cpu"),
        pipeline=MimicMotionPipeline(in_memory),
    )
    params = JobParams(resolution=128, num_inference_steps=2, tile_size=8, tile_overlap=2, sample_stride=2, seed=7)
    frames = read_video_frames(video, sample_stride=2).frames
    # The CLI's decode chunk size: the settings main() read.
    expected = animate(
        read_image(image), frames, params, animator, decode_chunk_size=get_settings().decode_chunk_size
    ).frames
    assert from_file.shape == expected.shape == (5, 192, 128, 3)
    np.testing.assert_array_equal(from_file, expected)


def _losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {record["step"]: record["loss"] for record in records}


def test_train_command_resumes_on_the_same_loss_curve(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    common = ["train", "--data", str(data_dir), "--model-dir", str(tiny_model_dir), *TRAIN_FLAGS]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert main([*common, "--out", str(straight), "--max-steps", "4"]) == 0
    assert main([*common, "--out", str(interrupted), "--max-steps", "2"]) == 0
    assert (interrupted / "latest").read_text().strip() == "checkpoints/step-00000002"
    assert main([*common, "--out", str(interrupted), "--max-steps", "4"]) == 0

    assert list(_losses(interrupted)) == [1, 2, 3, 4]
    assert _losses(interrupted) == _losses(straight)
    assert len(set(_losses(straight).values())) == 4  # a real curve, not one repeated value
    trained = torch.load(straight / CHECKPOINT_FILE, weights_only=True)
    resumed = torch.load(interrupted / CHECKPOINT_FILE, weights_only=True)
    assert list(trained) == list(resumed)
    assert [key.split(".")[0] for key in trained][:1] == ["unet"] and any(k.startswith("pose_net.") for k in trained)
    assert all(torch.equal(trained[key], resumed[key]) for key in trained)
    # It loads as a release checkpoint: strict keys and shapes against svd/unet/config.json.
    original = torch.load(tiny_model_dir / CHECKPOINT_FILE, weights_only=True)
    assert list(trained) == list(original)
    assert not all(torch.equal(trained[key], original[key]) for key in original)


def test_8bit_adam_without_bitsandbytes_is_a_clear_error(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # bitsandbytes is not a dependency (and is CUDA-only); the message is what a user without it sees.
    assert importlib.util.find_spec("bitsandbytes") is None
    args = ["train", "--data", str(data_dir), "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "o")]
    assert main([*args, *TRAIN_FLAGS, "--use-8bit-adam", "--max-steps", "1"]) == 2
    assert "bitsandbytes" in capsys.readouterr().err


def test_torchrun_trains_on_two_processes_with_gloo(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cli.main",
        "train", "--data", str(data_dir), "--model-dir", str(tiny_model_dir), "--out", str(out), *TRAIN_FLAGS,
        "--max-steps", "2",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(_losses(out)) == [1, 2]  # one line per step, written by rank 0 only
    trained = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    original = torch.load(tiny_model_dir / CHECKPOINT_FILE, weights_only=True)
    assert list(trained) == list(original)
    assert not all(torch.equal(trained[key], original[key]) for key in original)
