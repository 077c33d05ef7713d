"""Pose archives: poses back bit for bit (dtype included), and anything else refused as PoseArchiveError."""

import dataclasses
import io

import numpy as np
import pytest

from core.pose.archive import PoseArchiveError, pack_poses, unpack_poses
from core.pose.records import Pose

FIELDS = ("body", "body_scores", "face", "face_scores", "hands", "hand_scores")


def make_pose(num_persons: int, rng: np.random.Generator) -> Pose:
    p = num_persons
    return Pose(
        body=rng.random((p, 18, 2)), body_scores=rng.random((p, 18)) * 1.2,  # raw scores may exceed 1
        face=rng.random((p, 68, 2)), face_scores=rng.random((p, 68)),
        hands=rng.random((2 * p, 21, 2)), hand_scores=rng.random((2 * p, 21)).astype(np.float32),
    )  # fmt: skip


def test_unpacked_poses_equal_the_packed_ones_bit_for_bit_with_their_dtypes() -> None:
    rng = np.random.default_rng(0)
    poses = [make_pose(1, rng), make_pose(3, rng), make_pose(1, rng), make_pose(2, rng)]
    unpacked = unpack_poses(pack_poses(poses))
    assert [pose.num_persons for pose in unpacked] == [1, 3, 1, 2]
    for before, after in zip(poses, unpacked, strict=True):
        for name in FIELDS:
            expected, actual = getattr(before, name), getattr(after, name)
            assert actual.dtype == expected.dtype and np.array_equal(actual, expected), name


def with_feet(pose: Pose, rng: np.random.Generator) -> Pose:
    p = pose.num_persons
    return dataclasses.replace(pose, feet=rng.random((p, 6, 2)), feet_scores=rng.random((p, 6)))


def test_feet_come_back_bit_for_bit_when_every_pose_has_them() -> None:
    rng = np.random.default_rng(4)
    poses = [with_feet(make_pose(p, rng), rng) for p in (1, 2, 0, 1)]
    unpacked = unpack_poses(pack_poses(poses))
    for before, after in zip(poses, unpacked, strict=True):
        for name in (*FIELDS, "feet", "feet_scores"):
            assert np.array_equal(getattr(after, name), getattr(before, name)), name
    assert all(pose.feet is None for pose in unpack_poses(pack_poses([make_pose(1, rng)])))  # none stored: none back


def test_poses_with_and_without_feet_are_not_packed_together() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="feet"):
        pack_poses([with_feet(make_pose(1, rng), rng), make_pose(1, rng)])


def test_no_frames_pack_and_unpack_to_no_frames() -> None:
    assert unpack_poses(pack_poses([])) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "flipped_byte"])
def test_damaged_archives_are_refused(damage: str) -> None:
    data = pack_poses([make_pose(2, np.random.default_rng(1)) for _ in range(3)])
    damaged = {
        "garbage": b"PK\x03\x04 not really a zip" * 10,
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "flipped_byte": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],  # inside the first member's data
    }[damage]
    with pytest.raises(PoseArchiveError):
        unpack_poses(damaged)


def test_an_archive_whose_arrays_do_not_fit_the_person_counts_is_refused() -> None:
    rng = np.random.default_rng(2)
    with np.load(io.BytesIO(pack_poses([make_pose(1, rng), make_pose(1, rng)]))) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["num_persons"] = np.array([1, 2])  # three persons claimed, two stored
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with pytest.raises(PoseArchiveError, match="expected"):
        unpack_poses(buffer.getvalue())


def test_another_archive_format_is_refused() -> None:
    with np.load(io.BytesIO(pack_poses([make_pose(1, np.random.default_rng(3))]))) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["format"] = np.array(99)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with pytest.raises(PoseArchiveError, match="format"):
        unpack_poses(buffer.getvalue())
