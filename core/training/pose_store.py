"""Lossless per-video pose files: every sampled frame's DWPose keypoints and raw scores in one ``.npz``.

Rendered pose videos are not stored: lossy codecs change the brightness that carries confidence
(training.md §2.6), so the maps are drawn at training time from these arrays. Shapes: S sampled
frames, P the most persons in any frame (rows past a frame's ``num_persons`` are zero padding).
"""

from pathlib import Path

import numpy as np

from core.pose.records import Pose

_ARRAYS = ("body", "body_scores", "face", "face_scores", "left_hands", "left_hand_scores", "right_hands",
           "right_hand_scores")  # fmt: skip
_FEET = ("feet", "feet_scores")  # stored when every pose has them (files from before the feet have none)


def save_poses(path: Path, poses: list[Pose], frame_indices: np.ndarray, usable: np.ndarray) -> None:
    """Write ``poses`` (one per sampled frame) with their source-frame indices and usability flags.

    The file is written under a temporary name and renamed, so an interrupted run never leaves a
    half-written file that a resumed run would trust.
    """
    if len(poses) != len(frame_indices) or len(poses) != len(usable):
        raise ValueError(f"got {len(poses)} poses, {len(frame_indices)} frame indices, {len(usable)} flags")
    num_persons = np.array([pose.num_persons for pose in poses], dtype=np.int64)
    max_persons = int(num_persons.max(initial=0))
    with_feet = bool(poses) and all(pose.feet is not None and pose.feet_scores is not None for pose in poses)
    padded: dict[str, list[np.ndarray]] = {name: [] for name in (*_ARRAYS, *(_FEET if with_feet else ()))}
    for pose in poses:
        count = pose.num_persons
        parts = {
            "body": pose.body, "body_scores": pose.body_scores, "face": pose.face, "face_scores": pose.face_scores,
            # Pose keeps all left hands first, then all right hands (the original's order).
            "left_hands": pose.hands[:count], "left_hand_scores": pose.hand_scores[:count],
            "right_hands": pose.hands[count:], "right_hand_scores": pose.hand_scores[count:],
        }  # fmt: skip
        if with_feet:
            assert pose.feet is not None and pose.feet_scores is not None
            parts.update(feet=pose.feet, feet_scores=pose.feet_scores)
        for name, array in parts.items():
            padding = np.zeros((max_persons - count, *array.shape[1:]), dtype=array.dtype)
            padded[name].append(np.concatenate([array, padding]))
    arrays = {name: np.stack(values) for name, values in padded.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    arrays.update(
        num_persons=num_persons, frame_indices=np.asarray(frame_indices, dtype=np.int64),
        usable=np.asarray(usable, dtype=bool),
    )  # fmt: skip
    np.savez_compressed(partial, allow_pickle=False, **arrays)
    partial.replace(path)


def load_poses(path: Path) -> tuple[list[Pose], np.ndarray, np.ndarray]:
    """Read a file written by ``save_poses``: (poses, frame_indices (S,) int64, usable (S,) bool)."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in (*_ARRAYS, "num_persons", "frame_indices", "usable")}
        feet = {name: data[name] for name in _FEET if name in data.files}
    poses = []
    for frame, count in enumerate(arrays["num_persons"]):
        count = int(count)
        poses.append(
            Pose(
                body=arrays["body"][frame, :count],
                body_scores=arrays["body_scores"][frame, :count],
                face=arrays["face"][frame, :count],
                face_scores=arrays["face_scores"][frame, :count],
                hands=np.concatenate([arrays["left_hands"][frame, :count], arrays["right_hands"][frame, :count]]),
                hand_scores=np.concatenate(
                    [arrays["left_hand_scores"][frame, :count], arrays["right_hand_scores"][frame, :count]]
                ),
                feet=feet["feet"][frame, :count] if feet else None,
                feet_scores=feet["feet_scores"][frame, :count] if feet else None,
            )
        )
    return poses, arrays["frame_indices"], arrays["usable"]
