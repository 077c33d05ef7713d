"""Wan-Animate retargeting (wan-animate-reference §3, "Retargeting") on hand-made skeletons, and through
prepare_wan_inputs on the tiny DWPose."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.backends.wan_animate.aapose import AAPose
from core.backends.wan_animate.inputs import prepare_wan_inputs
from core.backends.wan_animate.retarget import BodyClass, body_class, body_scale, retarget_sequence
from core.contract.params import WanAnimateParams
from core.errors import NoPersonError
from core.models.files import resolve_model_files
from core.pose.wholebody import WholebodyEstimator
from tests.support.media import flat_image, moving_person_frames, person_image

# A standing body in pixels of a 200 x 200 frame, in AAPose order.
STANDING = np.array([
    (100, 20), (100, 40),  # nose, neck
    (80, 40), (76, 64), (74.5, 88.5),  # right shoulder, elbow, wrist
    (120, 40), (124, 64), (126.5, 88.5),  # left shoulder, elbow, wrist
    (90, 100), (90, 136), (90, 172),  # right hip, knee, ankle
    (110, 100), (110, 136), (110, 172),  # left hip, knee, ankle
    (96, 16), (104, 16), (92, 18), (108, 18),  # right eye, left eye, right ear, left ear
    (116, 180), (84, 180),  # left toe (left ankle + (6, 8)), right toe (right ankle + (-6, 8))
], dtype=np.float64)  # fmt: skip
R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = 2, 3, 4, 5, 6, 7
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, L_TOE, R_TOE = 8, 9, 10, 11, 12, 13, 18, 19
NECK = 1


def _pose(
    pixels: np.ndarray,
    size: int = 200,
    low: tuple[int, ...] = (),
    right_hand: tuple[np.ndarray, np.ndarray] | None = None,
    left_hand: tuple[np.ndarray, np.ndarray] | None = None,
) -> AAPose:
    """An AAPose from body pixels in a size x size frame; every point scores 0.9 but those in ``low`` (0.2)."""
    scores = np.full(20, 0.9)
    scores[list(low)] = 0.2
    no_hand = (np.tile(pixels[R_WRIST], (21, 1)), np.zeros(21))
    right = right_hand or no_hand
    left = left_hand or no_hand
    return AAPose(
        body=pixels / size, body_scores=scores, left_hand=left[0] / size, left_hand_scores=left[1],
        right_hand=right[0] / size, right_hand_scores=right[1], face=np.full((68, 2), 0.5),
        face_scores=np.ones(68), height=size, width=size,
    )  # fmt: skip


def _body_pixels(pose: AAPose) -> np.ndarray:
    return pose.body * (pose.width, pose.height)


def _retarget_one(source: AAPose, destination: AAPose) -> AAPose:
    return retarget_sequence([source], destination)[0]


ANKLES_AND_TOES = (R_ANKLE, L_ANKLE, L_TOE, R_TOE)


def test_a_destination_twice_as_tall_doubles_every_limb_about_its_neck() -> None:
    # Three-quarter bodies (ankles unseen): the scale is the nose-to-hips height, 80 px against 160 px.
    neck = np.array([200.0, 60.0])
    destination = _pose(neck + 2 * (STANDING - STANDING[NECK]), size=400, low=ANKLES_AND_TOES)
    out = _retarget_one(_pose(STANDING, low=ANKLES_AND_TOES), destination)
    assert (out.height, out.width) == (400, 400)
    np.testing.assert_allclose(_body_pixels(out), neck + 2 * (STANDING - STANDING[NECK]), atol=1e-9)


def test_a_longer_upper_arm_lengthens_both_and_the_forearms_follow_with_their_directions() -> None:
    destination = STANDING.copy()
    destination[R_ELBOW] = STANDING[R_SHOULDER] + 1.5 * (STANDING[R_ELBOW] - STANDING[R_SHOULDER])
    destination[R_WRIST] = destination[R_ELBOW] + (STANDING[R_WRIST] - STANDING[R_ELBOW])
    out = _body_pixels(_retarget_one(_pose(STANDING), _pose(destination)))

    def limb(points: np.ndarray, parent: int, child: int) -> np.ndarray:
        return points[child] - points[parent]

    for shoulder, elbow, wrist in ((R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST)):
        np.testing.assert_allclose(limb(out, shoulder, elbow), 1.5 * limb(STANDING, shoulder, elbow), atol=1e-9)
        np.testing.assert_allclose(limb(out, elbow, wrist), limb(STANDING, elbow, wrist), atol=1e-9)
    np.testing.assert_allclose(limb(out, R_HIP, R_KNEE), limb(STANDING, R_HIP, R_KNEE), atol=1e-9)


def test_the_eye_to_ear_ratios_of_both_sides_are_averaged() -> None:
    r_eye, l_eye, r_ear, l_ear = 14, 15, 16, 17
    destination = STANDING.copy()
    destination[r_ear] = STANDING[r_eye] + 2 * (
        STANDING[r_ear] - STANDING[r_eye]
    )  # ratio 2 on the right, 1 on the left
    out = _body_pixels(_retarget_one(_pose(STANDING), _pose(destination)))
    for eye, ear in ((r_eye, r_ear), (l_eye, l_ear)):
        np.testing.assert_allclose(out[ear] - out[eye], 1.5 * (STANDING[ear] - STANDING[eye]), atol=1e-9)


def test_a_foot_is_clamped_to_half_its_own_shin_in_its_own_direction() -> None:
    source = STANDING.copy()
    source[R_KNEE] = (90, 140)  # right shin 32 px, left 36 px
    source[L_TOE] = source[L_ANKLE] + (18, 24)  # both feet 30 px long
    source[R_TOE] = source[R_ANKLE] + (-18, 24)
    out = _body_pixels(_retarget_one(_pose(source), _pose(source)))
    np.testing.assert_allclose(out[L_TOE] - out[L_ANKLE], (10.8, 14.4), atol=1e-9)  # 18 / 30 of it
    np.testing.assert_allclose(out[R_TOE] - out[R_ANKLE], (-9.6, 12.8), atol=1e-9)  # 16 / 30 of it


def test_a_full_body_stands_on_the_destination_feet_and_a_half_body_hangs_from_its_neck() -> None:
    destination = STANDING + np.array([30, -10])
    full = _body_pixels(_retarget_one(_pose(STANDING), _pose(destination)))
    # x: the hip midpoints meet; y: the lower ankle lands on the destination's lower ankle-toe midpoint.
    assert (full[R_HIP, 0] + full[L_HIP, 0]) / 2 == pytest.approx(130)
    assert max(full[R_ANKLE, 1], full[L_ANKLE, 1]) == pytest.approx(172 - 10 + 4)
    np.testing.assert_allclose(full, STANDING + np.array([30, -6]), atol=1e-9)
    hidden = (R_HIP, L_HIP, *ANKLES_AND_TOES)
    half = _body_pixels(_retarget_one(_pose(STANDING), _pose(destination, low=hidden)))
    np.testing.assert_allclose(half, STANDING + np.array([30, -10]), atol=1e-9)  # neck on neck


def test_hands_are_scaled_by_the_shoulder_ratio_and_put_on_the_moved_wrists_at_integer_pixels() -> None:
    # The destination's shoulders are twice as wide: the arms move out by 20 px, the hands grow twice.
    destination = STANDING.copy()
    for shoulder, elbow, wrist, dx in ((R_SHOULDER, R_ELBOW, R_WRIST, -20), (L_SHOULDER, L_ELBOW, L_WRIST, 20)):
        destination[[shoulder, elbow, wrist], 0] += dx
    right = np.tile([75.5, 90.5], (21, 1))  # the root 1 px right of and 2 px below the wrist
    right[1] += (2, 3)
    right_scores = np.full(21, 0.9)
    right_scores[2] = 0.3  # dropped
    left = np.tile(STANDING[L_WRIST], (21, 1))
    hands = {"right_hand": (right, right_scores), "left_hand": (left, np.full(21, 0.9))}
    # Three-quarter bodies: hung from the neck, which stays where it is.
    out = _retarget_one(_pose(STANDING, low=ANKLES_AND_TOES, **hands), _pose(destination, low=ANKLES_AND_TOES))
    # The reference's slots are swapped: the first (left_hand) holds the hand placed on the right wrist.
    placed = np.trunc(out.left_hand * 200)
    np.testing.assert_array_equal(placed[0], (54, 88))  # the root on the moved wrist (54.5, 88.5)
    np.testing.assert_array_equal(placed[1], (58, 94))  # (54.5, 88.5) + 2 * (2, 3)
    assert np.isnan(out.left_hand[2]).all() and out.left_hand_scores[2] == 0
    assert out.left_hand_scores[1] == 0.9
    np.testing.assert_array_equal(np.unique(np.trunc(out.right_hand * 200), axis=0), [(146, 88)])


@pytest.mark.parametrize(
    ("low", "expected"),
    [((), BodyClass.full), ((R_ANKLE,), BodyClass.three_quarter), ((L_HIP,), BodyClass.half)],
)
def test_body_class(low: tuple[int, ...], expected: BodyClass) -> None:
    assert body_class(_pose(STANDING, low=low)) == expected


def test_an_ankle_below_the_frame_makes_a_three_quarter_body() -> None:
    below = STANDING.copy()
    below[L_ANKLE, 1] = 201
    assert body_class(_pose(below)) == BodyClass.three_quarter


@pytest.mark.parametrize(
    ("low", "expected"),
    [((), 152 / 344), ((R_ANKLE,), 80 / 160), ((R_ANKLE, R_HIP), np.sqrt(200 * 200) / np.sqrt(500 * 500))],
)
def test_body_scale_uses_the_ankles_then_the_hips_then_the_frame_areas(low: tuple[int, ...], expected: float) -> None:
    # Source: nose-to-ankles 152 px, nose-to-hips 80 px. Destination, in a 500 px frame: 344 px and 160 px.
    destination = 2 * STANDING
    destination[[R_ANKLE, L_ANKLE], 1] = 384
    assert body_scale(_pose(STANDING), _pose(destination, size=500, low=low)) == pytest.approx(expected)


def test_a_body_without_height_cannot_be_retargeted() -> None:
    flat = STANDING.copy()
    flat[:, 1] = 100.0
    with pytest.raises(NoPersonError):
        retarget_sequence([_pose(STANDING)], _pose(flat))


# ---------------------------------------------------------------------------------------------------------
# Through prepare_wan_inputs on the tiny DWPose


@pytest.fixture(scope="module")
def estimator(tiny_model_dir: Path) -> WholebodyEstimator:
    files = resolve_model_files(tiny_model_dir)

    def session(path: Path) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    return WholebodyEstimator(session(files.detector), session(files.pose_model))


def test_prepare_wan_inputs_retargets_onto_the_reference_and_draws_at_its_size(estimator: WholebodyEstimator) -> None:
    frames = moving_person_frames(3)  # (3, 144, 176, 3)
    reference = person_image(256, 192)
    plain = prepare_wan_inputs(reference, frames, WanAnimateParams(seed=0), estimator, area=(192, 256))
    retargeted = prepare_wan_inputs(
        reference, frames, WanAnimateParams(retarget=True, seed=0), estimator, area=(192, 256)
    )
    assert retargeted.reference_image.shape == (256, 192, 3)
    assert retargeted.pose_frames.shape == (3, 256, 192, 3) and retargeted.pose_frames.any()
    assert not np.array_equal(retargeted.pose_frames, plain.pose_frames)
    assert retargeted.face_frames.any()
    np.testing.assert_array_equal(retargeted.face_frames, plain.face_frames)  # faces from the native frames


def test_retargeting_needs_a_person_in_the_reference(estimator: WholebodyEstimator) -> None:
    frames, params = moving_person_frames(2), WanAnimateParams(retarget=True)
    with pytest.raises(NoPersonError, match="no person found in the reference"):
        prepare_wan_inputs(flat_image(256, 192, 200), frames, params, estimator, area=(192, 256))
