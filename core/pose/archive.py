"""Pose lists as compact bytes (a compressed .npz) and back, exactly: the worker's pose cache stores them.

Every array keeps its dtype and values, so poses read back draw the very same pose frames. Reading checks
every shape against the person counts and raises ``PoseArchiveError`` on anything else: a cache entry
that was truncated or written by something else is a miss, never wrong poses.
"""

import io
import itertools
import zipfile
from typing import Final

import numpy as np

from core.pose.records import Pose

ARCHIVE_FORMAT: Final = 2  # bump when the layout changes: older entries then read as corrupt, i.e. a miss
# 2: the feet (toes and heels) are stored, when every pose has them.
# Pose field -> (points per person, how many rows per person: hands have two, left and right).
_FIELDS: Final = {
    "body": (18, 1), "body_scores": (18, 1), "face": (68, 1), "face_scores": (68, 1),
    "hands": (21, 2), "hand_scores": (21, 2),
}  # fmt: skip
_FEET_FIELDS: Final = {"feet": (6, 1), "feet_scores": (6, 1)}  # optional: all poses have them or none


class PoseArchiveError(ValueError):
    """The bytes are not a pose archive of this format (truncated, corrupt, another layout)."""


def pack_poses(poses: list[Pose]) -> bytes:
    """The poses of N frames as one compressed .npz: each field of all frames concatenated, plus the
    persons per frame. About 3 KB per person per frame before compression (float64, as DWPose gives them).

    Raises:
        ValueError: some poses have feet and others not (the archive keeps them for all frames or none).
    """
    with_feet = [pose.feet is not None and pose.feet_scores is not None for pose in poses]
    if any(with_feet) and not all(with_feet):
        raise ValueError("either every pose or none must have feet to be archived together")
    fields = {**_FIELDS, **_FEET_FIELDS} if poses and all(with_feet) else _FIELDS
    num_persons = np.array([pose.num_persons for pose in poses], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {"format": np.array(ARCHIVE_FORMAT), "num_persons": num_persons}
    for name in fields:
        # A frame's hands are (2P, 21, ...), all left then all right: concatenated per frame as they are.
        parts = [getattr(pose, name) for pose in poses]
        arrays[name] = np.concatenate(parts) if parts else np.empty((0,))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def unpack_poses(data: bytes) -> list[Pose]:
    """The poses ``pack_poses`` packed, bit for bit.

    Raises:
        PoseArchiveError: the bytes are not such an archive, or its arrays do not fit together.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ("format", "num_persons", *_FIELDS)}
            fields = {**_FIELDS, **_FEET_FIELDS} if "feet" in archive.files else _FIELDS
            arrays.update({name: archive[name] for name in fields if name not in arrays})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise PoseArchiveError(f"not a pose archive: {exc}") from exc
    if arrays["format"].shape != () or int(arrays["format"]) != ARCHIVE_FORMAT:
        raise PoseArchiveError(f"pose archive format {arrays['format']!r}, expected {ARCHIVE_FORMAT}")
    num_persons = arrays["num_persons"]
    if num_persons.ndim != 1 or num_persons.dtype.kind != "i" or (num_persons < 0).any():
        raise PoseArchiveError(f"bad person counts {num_persons.dtype} {num_persons.shape}")
    total = int(num_persons.sum())
    for name, (points, rows) in fields.items():
        expected = (rows * total, points, 2) if not name.endswith("scores") else (rows * total, points)
        if len(num_persons) > 0 and arrays[name].shape != expected:
            raise PoseArchiveError(f"{name} is {arrays[name].shape}, expected {expected}")
    # Frame k's rows are persons starts[k]..starts[k+1] (twice as many rows for the hands, in the same order).
    starts = np.concatenate([[0], np.cumsum(num_persons)])
    return [
        Pose(**{name: arrays[name][rows * first : rows * last].copy() for name, (_, rows) in fields.items()})
        for first, last in itertools.pairwise(int(start) for start in starts)
    ]
