"""Pose alignment (reference §7): the y-only fit, the aspect-preserving x scale and the crash cases."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import MediaError, NoPersonError
from core.pose.align import REFERENCE_KEYPOINTS, PoseAlignment, align_pose, fit_alignment
from core.pose.records import Pose

REFERENCE_SIZE = (1024, 576)  # (H, W): the 576-resolution portrait target
VIDEO_SIZE = (720, 1280)  # a landscape driving video


def make_pose(bodies: np.ndarray, body_scores: np.ndarray | None = None, seed: int = 0) -> Pose:
    """A Pose with the given (P, 18, 2) bodies, visible unless told otherwise, random face and hands."""
    rng = np.random.default_rng(seed)
    num_persons = bodies.shape[0]
    return Pose(
        body=bodies,
        body_scores=np.full((num_persons, 18), 0.9) if body_scores is None else body_scores,
        face=rng.uniform(0, 1, (num_persons, 68, 2)),
        face_scores=rng.uniform(0, 1, (num_persons, 68)),
        hands=rng.uniform(0, 1, (2 * num_persons, 21, 2)),
        hand_scores=rng.uniform(0, 1, (2 * num_persons, 21)),
    )


def reference_body(seed: int = 0) -> np.ndarray:
    """(18, 2) normalised body with distinct y values."""
    return np.random.default_rng(seed).uniform(0.1, 0.9, (18, 2))


def driving_from(ref: np.ndarray, alignment: PoseAlignment, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """The (18, 2) driving body that ``alignment`` maps exactly onto ``ref`` (plus optional x jitter)."""
    det_x = (ref[:, 0] - alignment.bx) / alignment.ax
    det_y = (ref[:, 1] - alignment.by) / alignment.ay
    det_x = det_x + np.random.default_rng(seed).uniform(-jitter, jitter, det_x.shape)
    return np.stack([det_x, det_y], axis=-1)


def x_scale(ay: float, reference_size: tuple[int, int], video_size: tuple[int, int]) -> float:
    (height, width), (fh, fw) = reference_size, video_size
    return ay * (fw * height) / (fh * width)


def test_reference_keypoints_are_version_1_1_set_without_elbows_and_wrists() -> None:
    assert REFERENCE_KEYPOINTS == (0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)
    assert not {3, 4, 6, 7} & set(REFERENCE_KEYPOINTS)


def test_fit_alignment_recovers_known_affine() -> None:
    ref = reference_body()
    ay, by = 0.8, 0.05
    truth = PoseAlignment(ax=x_scale(ay, REFERENCE_SIZE, VIDEO_SIZE), ay=ay, bx=-0.3, by=by)
    driving = [make_pose(driving_from(ref, truth)[None]) for _ in range(3)]

    fitted = fit_alignment(make_pose(ref[None]), driving, REFERENCE_SIZE, VIDEO_SIZE)

    assert fitted.ay == pytest.approx(0.8, abs=1e-12)
    assert fitted.by == pytest.approx(0.05, abs=1e-12)
    assert fitted.ax == pytest.approx(truth.ax, abs=1e-12)
    assert fitted.bx == pytest.approx(-0.3, abs=1e-12)


def test_fit_alignment_x_scale_keeps_pixel_aspect_whatever_the_x_data() -> None:
    # 1024x576 reference, 720x1280 video: ax = ay * (1280 * 1024) / (720 * 576) = ay * 3.1604938...
    ref = reference_body()
    truth = PoseAlignment(ax=1.0, ay=0.5, bx=0.0, by=0.2)  # ax here only shapes the driving x data
    driving = [make_pose(driving_from(ref, truth, jitter=0.05, seed=s)[None]) for s in range(4)]

    fitted = fit_alignment(make_pose(ref[None]), driving, REFERENCE_SIZE, VIDEO_SIZE)

    assert fitted.ay == pytest.approx(0.5, abs=1e-12)
    assert fitted.ax == pytest.approx(0.5 * 3.1604938271604937, abs=1e-12)
    assert fitted.ax != pytest.approx(1.0)  # the x data never enters the x scale


def test_fit_alignment_same_sizes_give_isotropic_scale() -> None:
    ref = reference_body()
    truth = PoseAlignment(ax=0.7, ay=0.7, bx=0.1, by=0.1)
    driving = [make_pose(driving_from(ref, truth)[None])]

    fitted = fit_alignment(make_pose(ref[None]), driving, (512, 512), (300, 300))

    assert fitted.ax == pytest.approx(fitted.ay, abs=1e-12)


def test_fit_alignment_x_offset_is_mean_residual() -> None:
    ref = reference_body()
    truth = PoseAlignment(ax=x_scale(0.9, REFERENCE_SIZE, VIDEO_SIZE), ay=0.9, bx=0.25, by=0.0)
    det = driving_from(ref, truth, jitter=0.02)
    ids = list(REFERENCE_KEYPOINTS)

    fitted = fit_alignment(make_pose(ref[None]), [make_pose(det[None])], REFERENCE_SIZE, VIDEO_SIZE)

    assert fitted.bx == pytest.approx(np.mean(ref[ids, 0] - fitted.ax * det[ids, 0]), abs=1e-12)


def test_fit_alignment_ignores_reference_keypoints_at_or_below_threshold_and_elbows() -> None:
    ref = reference_body()
    truth = PoseAlignment(ax=x_scale(1.2, REFERENCE_SIZE, VIDEO_SIZE), ay=1.2, bx=0.0, by=-0.1)
    det = driving_from(ref, truth)
    scores = np.full((1, 18), 0.9)
    scores[0, [0, 8]] = [0.3, 0.1]  # exactly 0.3 is not visible (score > 0.3 is)
    det[[0, 8, 3, 4, 6, 7]] = 5.0  # garbage where the fit must not look

    fitted = fit_alignment(make_pose(ref[None], scores), [make_pose(det[None])], REFERENCE_SIZE, VIDEO_SIZE)

    assert fitted.ay == pytest.approx(1.2, abs=1e-12)
    assert fitted.by == pytest.approx(-0.1, abs=1e-12)


def test_fit_alignment_uses_driving_keypoints_without_confidence_filtering() -> None:
    ref = reference_body()
    truth = PoseAlignment(ax=x_scale(1.0, REFERENCE_SIZE, VIDEO_SIZE), ay=1.0, bx=0.0, by=0.0)
    det = driving_from(ref, truth)
    det[0, 1] += 0.5  # the nose is off ...
    scores = np.full((1, 18), 0.9)
    scores[0, 0] = 0.01  # ... with a tiny score, yet the original still fits on it

    fitted = fit_alignment(make_pose(ref[None]), [make_pose(det[None], scores)], REFERENCE_SIZE, VIDEO_SIZE)

    assert fitted.ay != pytest.approx(1.0, abs=1e-3)


def test_fit_alignment_excludes_multi_person_frames_but_align_moves_them() -> None:
    ref = reference_body()
    truth = PoseAlignment(ax=x_scale(0.6, REFERENCE_SIZE, VIDEO_SIZE), ay=0.6, bx=0.1, by=0.3)
    single = make_pose(driving_from(ref, truth)[None])
    crowd = make_pose(np.random.default_rng(3).uniform(0, 1, (2, 18, 2)))  # would wreck the fit

    fitted = fit_alignment(make_pose(ref[None]), [single, crowd, single], REFERENCE_SIZE, VIDEO_SIZE)
    moved = align_pose(crowd, fitted)

    assert fitted.ay == pytest.approx(0.6, abs=1e-12)
    np.testing.assert_allclose(moved.body[1], crowd.body[1] * [fitted.ax, fitted.ay] + [fitted.bx, fitted.by])
    np.testing.assert_allclose(moved.hands[3], crowd.hands[3] * [fitted.ax, fitted.ay] + [fitted.bx, fitted.by])


def test_fit_alignment_without_single_person_frame_falls_back_to_person_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = reference_body()
    truth = PoseAlignment(ax=x_scale(0.6, REFERENCE_SIZE, VIDEO_SIZE), ay=0.6, bx=0.1, by=0.3)
    rng = np.random.default_rng(4)
    crowds = [make_pose(np.stack([driving_from(ref, truth), rng.uniform(0, 1, (18, 2))])) for _ in range(2)]

    with caplog.at_level(logging.WARNING, logger="core.pose.align"):
        fitted = fit_alignment(make_pose(ref[None]), crowds, REFERENCE_SIZE, VIDEO_SIZE)

    assert fitted.ay == pytest.approx(0.6, abs=1e-12)
    assert fitted.bx == pytest.approx(0.1, abs=1e-12)
    assert "exactly one person" in caplog.text


def test_fit_alignment_empty_reference_raises_no_person() -> None:
    driving = [make_pose(reference_body()[None])]
    empty = make_pose(np.zeros((0, 18, 2)))

    with pytest.raises(NoPersonError, match="reference image") as info:
        fit_alignment(empty, driving, REFERENCE_SIZE, VIDEO_SIZE)
    assert info.value.code == "no_person_detected"


def test_fit_alignment_reference_without_confident_keypoint_raises_no_person() -> None:
    ref = make_pose(reference_body()[None], np.full((1, 18), 0.3))  # 0.3 itself is not visible
    driving = [make_pose(reference_body()[None])]

    with pytest.raises(NoPersonError, match="no person found in the reference image"):
        fit_alignment(ref, driving, REFERENCE_SIZE, VIDEO_SIZE)


def test_fit_alignment_without_driving_frames_raises_media_error() -> None:
    with pytest.raises(MediaError, match="no frames"):
        fit_alignment(make_pose(reference_body()[None]), [], REFERENCE_SIZE, VIDEO_SIZE)


def test_fit_alignment_without_any_driving_person_raises_no_person() -> None:
    nobody = make_pose(np.zeros((0, 18, 2)))

    with pytest.raises(NoPersonError, match="driving video"):
        fit_alignment(make_pose(reference_body()[None]), [nobody, nobody], REFERENCE_SIZE, VIDEO_SIZE)


def test_align_pose_maps_every_point_and_keeps_scores() -> None:
    pose = make_pose(np.random.default_rng(5).uniform(0, 1, (2, 18, 2)), seed=5)
    alignment = PoseAlignment(ax=2.0, ay=0.5, bx=0.25, by=-1.0)

    moved = align_pose(pose, alignment)

    np.testing.assert_array_equal(moved.body[..., 0], pose.body[..., 0] * 2.0 + 0.25)
    np.testing.assert_array_equal(moved.body[..., 1], pose.body[..., 1] * 0.5 - 1.0)
    np.testing.assert_array_equal(moved.face[..., 0], pose.face[..., 0] * 2.0 + 0.25)
    np.testing.assert_array_equal(moved.hands[..., 1], pose.hands[..., 1] * 0.5 - 1.0)
    assert moved.body_scores is pose.body_scores
    assert moved.face_scores is pose.face_scores
    assert moved.hand_scores is pose.hand_scores


@settings(max_examples=30, deadline=None)
@given(
    ay=st.floats(0.2, 3.0),
    by=st.floats(-0.5, 0.5),
    bx=st.floats(-0.5, 0.5),
    video_hw=st.tuples(st.integers(64, 1920), st.integers(64, 1920)),
    num_frames=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_fit_alignment_recovers_random_scale_and_offset(
    ay: float, by: float, bx: float, video_hw: tuple[int, int], num_frames: int, seed: int
) -> None:
    ref = reference_body(seed)
    truth = PoseAlignment(ax=x_scale(ay, REFERENCE_SIZE, video_hw), ay=ay, bx=bx, by=by)
    driving = [make_pose(driving_from(ref, truth)[None]) for _ in range(num_frames)]

    fitted = fit_alignment(make_pose(ref[None]), driving, REFERENCE_SIZE, video_hw)

    assert fitted.ay == pytest.approx(ay, rel=1e-9)
    assert fitted.ax == pytest.approx(truth.ax, rel=1e-9)
    assert fitted.by == pytest.approx(by, abs=1e-9)
    assert fitted.bx == pytest.approx(bx, abs=1e-9)


def test_fit_alignment_compares_float32_scores_in_float64() -> None:
    # float32(0.3) = 0.3000000119... > 0.3: the original (float64 scores) keeps that keypoint.
    ref = reference_body()
    scores = np.zeros((1, 18), dtype=np.float32)
    scores[0, 0] = np.float32(0.3)
    driving = [make_pose(reference_body(seed)[None]) for seed in (1, 2)]

    fitted = fit_alignment(make_pose(ref[None], scores), driving, REFERENCE_SIZE, VIDEO_SIZE)  # no raise

    assert fitted.ay == pytest.approx(0.0, abs=1e-9)  # one reference y, tiled: a flat fit
