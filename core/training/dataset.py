"""Training triplets from prepared videos: (reference frame, clip frames, their pose maps) plus hand weights.

One sample mirrors one inference tile (training.md §1.2, §4.2): frame 0 is the reference frame with
its own pose, frames 1..F-1 are consecutive sampled frames of the same video with their poses. Frames
go through the inference resize/crop rule, and pose maps are drawn on the fly by the inference
renderer after the inference alignment. Shapes: F frames, H, W pixels, h, w = H/8, W/8.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from core.pose.align import PoseAlignment, align_pose, fit_alignment
from core.pose.extract import PoseSequence, render_pose_frames
from core.pose.records import Pose
from core.training.data_prep import Manifest, VideoEntry
from core.training.masks import DEFAULT_HAND_FACTOR, DEFAULT_HAND_THRESHOLD, hand_mask, latent_loss_weights
from core.training.pose_store import load_poses
from core.video.decode import read_video_frames
from core.video.frames import cover_size, resize_and_crop, target_size

VAE_SCALE_FACTOR = 8


@dataclass(frozen=True)
class SampleConfig:
    """How samples are cut from a video."""

    num_frames: int = 16  # clip length including the reference frame 0 (the paper's 16)
    resolution: int = 576  # short side, the inference rule (576 -> 576x1024)
    hand_threshold: float = DEFAULT_HAND_THRESHOLD
    hand_factor: float = DEFAULT_HAND_FACTOR
    fit_alignment: bool = True  # map clip poses onto the reference body as inference does
    samples_per_video: int = 1  # dataset items per video and epoch
    seed: int = 0


def crop_alignment(video_size: tuple[int, int], frame_size: tuple[int, int]) -> PoseAlignment:
    """The exact map of normalised coordinates through the cover resize and centre crop to ``frame_size``.

    Same arithmetic as ``resize_and_crop``: x_t = (x * W_r - left) / W_t, likewise for y.
    """
    (height, width), (frame_height, frame_width) = video_size, frame_size
    resize_height, resize_width = cover_size(height, width, frame_height, frame_width)
    top = int(round((resize_height - frame_height) / 2.0))
    left = int(round((resize_width - frame_width) / 2.0))
    return PoseAlignment(
        ax=resize_width / frame_width, ay=resize_height / frame_height, bx=-left / frame_width, by=-top / frame_height
    )


class TripletDataset(Dataset[dict[str, torch.Tensor]]):
    """Items are addressed by ``(index, epoch)``: the same pair always gives the same sample.

    Each item is a dict of ``frames`` (F, H, W, 3) uint8 (frame 0 = the reference), ``pose_frames``
    (F, H, W, 3) uint8 (pose 0 = the reference's pose) and ``loss_weights`` (F, h, w) float32.
    """

    def __init__(self, manifest: Manifest, data_dir: Path, config: SampleConfig) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self.videos = [video for video in manifest.videos if video.num_samples >= config.num_frames - 1]
        if not self.videos:
            raise ValueError(
                f"no prepared video has the {config.num_frames - 1} sampled frames a clip of "
                f"{config.num_frames} needs (manifest in {data_dir})"
            )
        self._poses = lru_cache(maxsize=64)(self._load_poses)

    def __len__(self) -> int:
        return len(self.videos) * self.config.samples_per_video

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key
        video = self.videos[index % len(self.videos)]
        rng = np.random.default_rng([self.config.seed, epoch, index])
        poses, usable = self._poses(video.poses)
        reference, window = self._choose_frames(rng, usable)
        return self.make_sample(video, poses, reference, window)

    def make_sample(
        self, video: VideoEntry, poses: list[Pose], reference: int, window: list[int]
    ) -> dict[str, torch.Tensor]:
        """The sample with sampled frame ``reference`` at frame 0 and sampled frames ``window`` after it."""
        config = self.config
        decoded = read_video_frames(Path(video.video), sample_stride=video.sample_stride)
        if len(decoded.frames) != video.num_samples:
            raise ValueError(
                f"{video.video} now gives {len(decoded.frames)} sampled frames, {video.num_samples} when "
                "prepared: prepare it again"
            )
        video_size = (decoded.info.height, decoded.info.width)
        frame_size = target_size(*video_size, config.resolution)
        indices = [reference, *window]
        # 1. Frames through the inference resize/crop rule (reference §4.0).
        frames = np.stack([resize_and_crop(decoded.frames[i], *frame_size) for i in indices])  # (F, H, W, 3)
        # 2. Poses: the reference pose in the cropped frame, as DWPose sees the inference reference image;
        # clip poses mapped onto it by the inference alignment, drawn by the inference renderer.
        crop = crop_alignment(video_size, frame_size)
        reference_pose = align_pose(poses[reference], crop)
        driving = [poses[i] for i in window]
        alignment = fit_alignment(reference_pose, driving, frame_size, video_size) if config.fit_alignment else crop
        pose_frames = render_pose_frames(PoseSequence(reference_pose, driving, alignment, frame_size))
        # 3. Hand weights where the hands really are in each cropped frame.
        masks = np.stack([hand_mask(align_pose(poses[i], crop), *frame_size, config.hand_threshold) for i in indices])
        weights = latent_loss_weights(masks, config.hand_factor, VAE_SCALE_FACTOR)  # (F, h, w)
        return {
            "frames": torch.from_numpy(frames),
            "pose_frames": torch.from_numpy(pose_frames),
            "loss_weights": torch.from_numpy(weights),
        }

    def _choose_frames(self, rng: np.random.Generator, usable: np.ndarray) -> tuple[int, list[int]]:
        """A random usable reference frame anywhere in the video and a random window of F - 1 frames."""
        num_window = self.config.num_frames - 1
        start = int(rng.integers(0, len(usable) - num_window + 1))
        candidates = np.flatnonzero(usable)
        reference = int(rng.choice(candidates)) if len(candidates) else start
        return reference, list(range(start, start + num_window))

    def _load_poses(self, pose_file: str) -> tuple[list[Pose], np.ndarray]:
        poses, _, usable = load_poses(self.data_dir / pose_file)
        return poses, usable
