"""Offline data preparation: DWPose keypoints and scores for each training video, and a manifest.

For each video: decode the sampled frames (``sample_stride``, fps-normalised as at inference), run
the whole-body estimator, store the poses losslessly (``pose_store``), and add an entry to
``manifest.json``. Videos without enough single-person frames are recorded as skipped with a
reason. A rerun skips videos already prepared, so an interrupted run resumes where it stopped.
"""

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import MimicMotionError
from core.pose.align import REFERENCE_KEYPOINTS
from core.pose.extract import DRIVING_BATCH_SIZE, PoseEstimator
from core.pose.records import Pose
from core.training.masks import reliable_hands
from core.training.pose_store import save_poses
from core.video.decode import read_video_frames

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
POSES_DIR = "poses"
MANIFEST_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
# A frame is usable when exactly one person is found and at least this many of the keypoints the
# pose alignment fits on (head, shoulders, hips, legs) score above 0.3.
MIN_VISIBLE_FIT_KEYPOINTS = 4


@dataclass
class VideoEntry:
    """One prepared video in the manifest."""

    name: str  # path relative to the videos directory, the entry's key
    video: str  # absolute path of the source video
    poses: str  # pose file, relative to the data directory
    size_bytes: int  # of the source video when prepared: a changed file is prepared again
    fps: float
    width: int
    height: int
    sample_stride: int
    stride: int  # source frames between samples (sample_stride times int(fps / 24))
    num_samples: int
    num_usable: int
    reliable_hand_fraction: float  # share of (usable frame, hand) pairs that pass the hand threshold


@dataclass
class Manifest:
    """``manifest.json``: the prepared videos and the skipped ones with their reason."""

    sample_stride: int
    hand_threshold: float
    videos: list[VideoEntry] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"name", "reason"}
    version: int = MANIFEST_VERSION


def read_manifest(data_dir: Path) -> Manifest:
    """Load ``data_dir/manifest.json``."""
    path = Path(data_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `mimicmotion prepare-data` first")
    content: dict[str, Any] = json.loads(path.read_text())
    if content.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path} has version {content.get('version')}, expected {MANIFEST_VERSION}")
    videos = [VideoEntry(**entry) for entry in content["videos"]]
    return Manifest(
        sample_stride=content["sample_stride"], hand_threshold=content["hand_threshold"], videos=videos,
        skipped=content["skipped"],
    )  # fmt: skip


def write_manifest(data_dir: Path, manifest: Manifest) -> None:
    path = Path(data_dir) / MANIFEST_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    partial.replace(path)  # atomic: a crash leaves the previous manifest, never half of one


def find_videos(videos_dir: Path) -> list[Path]:
    """Every video file under ``videos_dir`` (recursively), sorted for a stable order."""
    return sorted(path for path in Path(videos_dir).rglob("*") if path.suffix.lower() in VIDEO_SUFFIXES)


def usable_frames(poses: Sequence[Pose]) -> np.ndarray:
    """(S,) bool: exactly one person, with enough body keypoints for the pose alignment's fit."""
    flags = []
    for pose in poses:
        visible = pose.body_visible[0, list(REFERENCE_KEYPOINTS)].sum() if pose.num_persons == 1 else 0
        flags.append(pose.num_persons == 1 and visible >= MIN_VISIBLE_FIT_KEYPOINTS)
    return np.array(flags, dtype=bool)


def prepare_data(
    videos_dir: Path,
    out_dir: Path,
    estimator: PoseEstimator,
    *,
    sample_stride: int = 2,
    min_frames: int = 16,
    hand_threshold: float = 0.5,
    on_video: Callable[[str, str], None] | None = None,
) -> Manifest:
    """Prepare every video under ``videos_dir`` into ``out_dir``; returns the manifest written.

    Args:
        min_frames: a video needs at least this many usable sampled frames (the clip length you train on).
        on_video: called as ``on_video(name, outcome)`` after each video, outcome "prepared",
            "already prepared" or "skipped: <reason>" (a progress bar hooks in here).
    """
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _resumable_manifest(out_dir, sample_stride, hand_threshold)
    done = {entry.name: entry for entry in manifest.videos}
    manifest.skipped = []  # skipped videos are tried again: the reason may have been fixed
    for path in find_videos(videos_dir):
        name = path.relative_to(videos_dir).as_posix()
        entry = done.get(name)
        if entry is not None and entry.size_bytes == path.stat().st_size and (out_dir / entry.poses).is_file():
            outcome = "already prepared"
        else:
            manifest.videos = [video for video in manifest.videos if video.name != name]
            try:
                manifest.videos.append(_prepare_video(path, name, out_dir, estimator, sample_stride, min_frames,
                                                      hand_threshold))  # fmt: skip
                outcome = "prepared"
            except (_Unusable, MimicMotionError) as exc:
                reason = exc.message if isinstance(exc, MimicMotionError) else str(exc)
                manifest.skipped.append({"name": name, "reason": reason})
                logger.warning("skipping %s: %s", name, reason)
                outcome = f"skipped: {reason}"
            write_manifest(out_dir, manifest)
        if on_video is not None:
            on_video(name, outcome)
    manifest.videos.sort(key=lambda video: video.name)
    write_manifest(out_dir, manifest)
    return manifest


class _Unusable(Exception):
    """The video decodes but has too few single-person frames to train on."""


def _resumable_manifest(out_dir: Path, sample_stride: int, hand_threshold: float) -> Manifest:
    if not (out_dir / MANIFEST_FILE).is_file():
        return Manifest(sample_stride=sample_stride, hand_threshold=hand_threshold)
    manifest = read_manifest(out_dir)
    if manifest.sample_stride != sample_stride:
        raise ValueError(
            f"{out_dir} was prepared with sample_stride {manifest.sample_stride}, not {sample_stride}: "
            "use another --out directory"
        )
    manifest.hand_threshold = hand_threshold
    return manifest


def _prepare_video(
    path: Path,
    name: str,
    out_dir: Path,
    estimator: PoseEstimator,
    sample_stride: int,
    min_frames: int,
    hand_threshold: float,
) -> VideoEntry:
    decoded = read_video_frames(path, sample_stride=sample_stride)
    poses: list[Pose] = []
    for start in range(0, len(decoded.frames), DRIVING_BATCH_SIZE):
        poses.extend(estimator.estimate_batch(list(decoded.frames[start : start + DRIVING_BATCH_SIZE])))
    usable = usable_frames(poses)
    if usable.sum() < min_frames:
        raise _Unusable(
            f"only {int(usable.sum())} of {len(poses)} sampled frames show exactly one clearly visible person "
            f"(need {min_frames})"
        )
    hands = [reliable_hands(pose, hand_threshold) for pose, ok in zip(poses, usable, strict=True) if ok]
    pose_file = f"{POSES_DIR}/{name.replace('/', '__')}.npz"
    frame_indices = np.arange(len(poses)) * decoded.stride
    save_poses(out_dir / pose_file, poses, frame_indices, usable)
    return VideoEntry(
        name=name,
        video=str(path.resolve()),
        poses=pose_file,
        size_bytes=path.stat().st_size,
        fps=decoded.info.fps,
        width=decoded.info.width,
        height=decoded.info.height,
        sample_stride=sample_stride,
        stride=decoded.stride,
        num_samples=len(poses),
        num_usable=int(usable.sum()),
        reliable_hand_fraction=float(np.concatenate(hands).mean()) if hands else 0.0,
    )
