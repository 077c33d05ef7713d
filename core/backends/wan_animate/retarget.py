"""Retargeting the driving skeleton onto the reference body: the reference's ``get_retarget_pose`` in animate
mode, without the FLUX edit (wan-animate-reference §3, "Retargeting", steps 1-7).

The source is driving frame 0 and the destination the reference image's pose. They fix, once per video, a
ratio per limb, a body scale and an offset; every frame is then rebuilt from the neck outward with those
ratios, moved onto the reference body and normalised to the reference size, where it is drawn.

The arithmetic is the reference's, in its order and with its truncations, on float64: lengths and angles
through ``math`` (degrees and back, as it does), pixels as the normalised points times the frame size.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from core.backends.wan_animate.aapose import AAPose
from core.backends.wan_animate.draw import LIMBS
from core.errors import NoPersonError

# AAPose body indices
NOSE, NECK, R_WRIST, L_WRIST = 0, 1, 4, 7
R_HIP, R_ANKLE, L_HIP, L_ANKLE, L_TOE, R_TOE = 8, 10, 11, 13, 18, 19

HEIGHT_SCORE = 0.5  # nose and ankles (or hips) measure the body height above this score (strictly)
BODY_CLASS_SCORE = 0.4  # hips and ankles count for the body class at or above this score
HAND_SCORE = 0.4  # hand points below this score are dropped
FOOT_TO_SHIN = 0.5  # a rebuilt foot is at most this times its rebuilt shin

# Indices into LIMBS (0-based): pairs set to the larger of their two ratios (shoulders, upper arms,
# forearms, neck-hips, thighs, shins, feet), pairs set to their mean (nose-eyes, eyes-ears).
MAX_PAIRS = ((0, 1), (2, 4), (3, 5), (6, 9), (7, 10), (8, 11), (17, 18))
MEAN_PAIRS = ((13, 15), (14, 16))
R_SHIN, L_SHIN, L_FOOT, R_FOOT = 8, 11, 17, 18

Points = list[tuple[float, float]]  # 20 body points in pixels


class BodyClass(IntEnum):
    """How much of the body is in the frame; the lower of the two skeletons' classes is used."""

    half = 0
    three_quarter = 1
    full = 2


@dataclass(frozen=True)
class Retargeting:
    """What driving frame 0 and the reference fix for the whole video.

    Attributes:
        ratios: 19 per-limb length ratios (destination / source, in LIMBS order), after pairing.
        scale: ``scale_min``, source body height / destination body height.
        offset_x, offset_y: pixels subtracted from every rebuilt frame (at the driving frame's scale).
        ground_x: the rebuilt frame 0's anchor x (hip midpoint, or neck), for frame 0's own x offset.
        body_class: the lower of the two skeletons' classes.
        height, width: the reference's size, the output size.
    """

    ratios: tuple[float, ...]
    scale: float
    offset_x: float
    offset_y: float
    ground_x: float
    body_class: BodyClass
    height: int
    width: int


def body_scale(source: AAPose, destination: AAPose) -> float:
    """``scale_min`` (step 1): the ratio of the body heights, H * |mean ankle y - nose y|, where nose and both
    ankles score above 0.5 in both skeletons; else the same with the hips; else sqrt(H W) / sqrt(H' W')."""
    for lower in ((R_ANKLE, L_ANKLE), (R_HIP, L_HIP)):
        indices = (NOSE, *lower)
        if all(pose.body_scores[i] > HEIGHT_SCORE for pose in (source, destination) for i in indices):
            heights = [pose.height * abs((pose.body[lower[0], 1] + pose.body[lower[1], 1]) / 2 - pose.body[NOSE, 1])
                       for pose in (source, destination)]  # fmt: skip
            with np.errstate(divide="ignore", invalid="ignore"):  # a flat body: inf or nan, refused by the caller
                return float(heights[0] / heights[1])
    return float(np.sqrt(source.height * source.width) / np.sqrt(destination.height * destination.width))


def body_class(pose: AAPose) -> BodyClass:
    """Step 2: full if both hips and both ankles score >= 0.4 and none lies below the frame (y <= 1),
    three-quarter if the hips do, else half."""

    def seen(*indices: int) -> bool:
        return all(pose.body[i, 1] <= 1 and pose.body_scores[i] >= BODY_CLASS_SCORE for i in indices)

    if seen(R_ANKLE, L_ANKLE) and seen(R_HIP, L_HIP):
        return BodyClass.full
    if seen(R_HIP, L_HIP):
        return BodyClass.three_quarter
    return BodyClass.half


def limb_ratios(source: AAPose, destination: AAPose, destination_hw: tuple[int, int]) -> list[float]:
    """Steps 3-4: destination / source pixel length of each limb, scores ignored (the destination measured at
    ``destination_hw``, its size times the body scale), then the pairs set to their max or mean."""
    source_lengths = _lengths(_pixels(source.body, source.height, source.width))
    destination_lengths = _lengths(_pixels(destination.body, *destination_hw))
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero-length limb: inf or nan, as numpy's there
        ratios = [float(np.float64(d) / s) for d, s in zip(destination_lengths, source_lengths, strict=True)]
    for first, second in MAX_PAIRS:
        a, b = ratios[first], ratios[second]
        ratios[first] = ratios[second] = b if b > a else a  # Python's max(a, b), nan included
    for first, second in MEAN_PAIRS:
        ratios[first] = ratios[second] = (ratios[first] + ratios[second]) / 2
    return ratios


def fit_retargeting(source: AAPose, destination: AAPose) -> Retargeting:
    """Steps 1-4 and 6's offset, from driving frame 0 (``source``) and the reference's pose (``destination``).

    Raises:
        NoPersonError: either body has no height to scale by (where the reference divides by zero).
    """
    scale = body_scale(source, destination)
    if not (math.isfinite(scale) and scale > 0):
        raise NoPersonError(
            "the reference image or the first driving frame shows a body without height (nose level with the "
            "ankles or hips), which retargeting cannot scale: turn retarget off or use other pictures"
        )
    # The destination is measured at its size times the scale, truncated; it is drawn at its own size.
    scaled_hw = (int(destination.height * scale), int(destination.width * scale))
    ratios = limb_ratios(source, destination, scaled_hw)
    body = min(body_class(destination), body_class(source))
    source_points = _pixels(source.body, source.height, source.width)
    rebuilt = _rebuild(source_points, _scaled_lengths(source_points, ratios), _angles(source_points))
    dst = destination.body
    scaled_h, scaled_w = scaled_hw
    if body == BodyClass.full:
        # The destination's ground: the lower foot's ankle-toe midpoint, against the rebuilt lower ankle.
        right_foot_mid = (dst[R_ANKLE, 1] + dst[R_TOE, 1]) / 2
        left_foot_mid = (dst[L_ANKLE, 1] + dst[L_TOE, 1]) / 2
        ground_y = (right_foot_mid if right_foot_mid > left_foot_mid else left_foot_mid) * scaled_h
        source_ground_y = _max(rebuilt[R_ANKLE][1], rebuilt[L_ANKLE][1])
        ground_x = (rebuilt[R_HIP][0] + rebuilt[L_HIP][0]) / 2
        offset_x = ground_x - (dst[R_HIP, 0] + dst[L_HIP, 0]) * scaled_w / 2
        offset_y = source_ground_y - ground_y
    else:
        ground_x = rebuilt[NECK][0]
        offset_x = ground_x - dst[NECK, 0] * scaled_w
        offset_y = rebuilt[NECK][1] - dst[NECK, 1] * scaled_h
    return Retargeting(
        ratios=tuple(ratios), scale=scale, offset_x=float(offset_x), offset_y=float(offset_y),
        ground_x=float(ground_x), body_class=body, height=destination.height, width=destination.width,
    )  # fmt: skip


def retarget(pose: AAPose, fit: Retargeting, *, is_first: bool = False) -> AAPose:
    """Steps 5-7 on one driving frame: rebuilt with the limb ratios (feet clamped to half their shins),
    offset, divided by the scale and normalised to the reference size; hands scaled about their roots and
    moved onto the rebuilt wrists, at integer pixels.

    ``is_first``: frame 0 also moves by its own anchor's drift from ``fit.ground_x`` (none when it is the
    frame the fit was made on). Points the reference could not draw (inf or nan, from a zero-length limb of
    the fit) get score 0. The face is not carried: the face crops come from the native frames.
    """
    points = _pixels(pose.body, pose.height, pose.width)
    lengths = _scaled_lengths(points, fit.ratios)
    for foot, shin in ((R_FOOT, R_SHIN), (L_FOOT, L_SHIN)):
        if lengths[foot] > lengths[shin] * FOOT_TO_SHIN:
            lengths[foot] = lengths[shin] * FOOT_TO_SHIN
    rebuilt = _rebuild(points, lengths, _angles(points))
    offset_x = fit.offset_x
    if is_first and fit.body_class == BodyClass.full:
        offset_x += (rebuilt[R_HIP][0] + rebuilt[L_HIP][0]) / 2 - fit.ground_x
    elif is_first and fit.body_class == BodyClass.half:
        offset_x += rebuilt[NECK][0] - fit.ground_x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        moved = (np.asarray(rebuilt) - (offset_x, fit.offset_y)) / fit.scale  # (20, 2) pixels at the output size
        body = moved / (fit.width, fit.height)
        left_hand, right_hand = _move_hands(pose, points, moved, max(fit.ratios[0], fit.ratios[1]) / fit.scale)
    body_scores = np.where(np.isfinite(body).all(axis=1), pose.body_scores, 0.0)
    return AAPose(
        body=body, body_scores=body_scores,
        left_hand=_normalised(left_hand[0], fit.height, fit.width), left_hand_scores=left_hand[1],
        right_hand=_normalised(right_hand[0], fit.height, fit.width), right_hand_scores=right_hand[1],
        face=np.full_like(pose.face, np.nan), face_scores=np.zeros_like(pose.face_scores),
        height=fit.height, width=fit.width,
    )  # fmt: skip


def retarget_sequence(poses: list[AAPose], destination: AAPose) -> list[AAPose]:
    """Every driving frame retargeted with the fit of frame 0 onto ``destination``.

    Raises:
        NoPersonError: as ``fit_retargeting``.
    """
    fit = fit_retargeting(poses[0], destination)
    return [retarget(pose, fit, is_first=index == 0) for index, pose in enumerate(poses)]


def _pixels(points: np.ndarray, height: int, width: int) -> Points:
    return [(float(x * width), float(y * height)) for x, y in points]


def _lengths(points: Points) -> list[float]:
    lengths = []
    for first, second in LIMBS:
        (x1, y1), (x2, y2) = points[first - 1], points[second - 1]
        lengths.append(((y1 - y2) ** 2 + (x1 - x2) ** 2) ** 0.5)
    return lengths


def _scaled_lengths(points: Points, ratios: Sequence[float]) -> list[float]:
    return [length * ratio for length, ratio in zip(_lengths(points), ratios, strict=True)]


def _angles(points: Points) -> list[float]:
    angles = []
    for first, second in LIMBS:
        (x1, y1), (x2, y2) = points[first - 1], points[second - 1]
        angles.append(math.degrees(math.atan2(y1 - y2, x1 - x2)))
    return angles


def _rebuild(points: Points, lengths: list[float], angles: list[float]) -> Points:
    """From the neck outward in LIMBS order: child = new parent - length * (cos, sin)(angle), the angle being
    the original child-to-parent direction, so every direction is kept."""
    rebuilt = list(points)
    for (first, second), length, angle in zip(LIMBS, lengths, angles, strict=True):
        x, y = rebuilt[first - 1]
        radians = math.radians(angle)
        rebuilt[second - 1] = (x - length * math.cos(radians), y - length * math.sin(radians))
    return rebuilt


def _max(a: float, b: float) -> float:
    return b if b > a else a  # Python's max(a, b)


Hand = tuple[np.ndarray, np.ndarray]  # (21, 2) pixels at the output size (nan where dropped), (21,) scores


def _move_hands(pose: AAPose, points: Points, moved: np.ndarray, ratio: float) -> tuple[Hand, Hand]:
    """Step 7, as the reference: each hand scaled by ``ratio`` about its root (points below 0.4 dropped), then
    shifted by its wrist's move plus the wrist-to-root gap, truncated to integer pixels.

    Returns the two hands in the reference's output slots, which are swapped: the first (drawn first, as
    its ``kps_lhand``) is the one placed by the right wrist; which hand goes there follows the distances of
    the right hand's root to the two wrists.
    """
    size = np.array([pose.width, pose.height])
    right, right_scores = _scale_hand(pose.right_hand, pose.right_hand_scores, size, ratio)
    left, left_scores = _scale_hand(pose.left_hand, pose.left_hand_scores, size, ratio)
    wrist_r, wrist_l = np.array(points[R_WRIST]), np.array(points[L_WRIST])
    delta_r = moved[R_WRIST] - wrist_r  # the right wrist's move
    delta_l = moved[L_WRIST] - wrist_l
    if right[0, 0] != -1:
        delta_r = delta_r + (wrist_r - right[0] * size)  # the right hand's root onto the right wrist
    if left[0, 0] != -1:
        delta_l = delta_l + (wrist_l - left[0] * size)
    root = right[0] * size
    to_right_wrist = ((wrist_r[0] - root[0]) ** 2 + (wrist_r[1] - root[1]) ** 2) ** 0.5
    to_left_wrist = ((wrist_l[0] - root[0]) ** 2 + (wrist_l[1] - root[1]) ** 2) ** 0.5
    if to_right_wrist > to_left_wrist:  # the right hand sits at the left wrist: the hands trade places
        first, second = (left, left_scores), (right, right_scores)
    else:
        first, second = (right, right_scores), (left, left_scores)
    return _place(*first, delta_r, size), _place(*second, delta_l, size)


def _scale_hand(hand: np.ndarray, scores: np.ndarray, size: np.ndarray, ratio: float) -> Hand:
    """Normalised (21, 2) about the root (point 0) by ``ratio``, after the reference's round trip through
    pixels; dropped points at (-1, -1) with score 0."""
    normalised = hand * size / size
    scaled = normalised * ratio - normalised[0] * (ratio - 1)
    dropped = scores < HAND_SCORE
    return np.where(dropped[:, None], -1.0, scaled), np.where(dropped, 0.0, scores)


def _place(hand: np.ndarray, scores: np.ndarray, delta: np.ndarray, size: np.ndarray) -> Hand:
    """Pixels int(x * W + delta): nan, score 0, for dropped points and for any the reference's int() would
    fail on."""
    pixels = hand * size + delta
    keep = (scores != 0) & np.isfinite(pixels).all(axis=1)
    return np.where(keep[:, None], np.trunc(np.where(keep[:, None], pixels, 0.0)), np.nan), np.where(keep, scores, 0.0)


def _normalised(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Integer pixels (21, 2) as normalised points whose ``int(p * size)`` in the drawing is that integer again:
    k / W times W can fall an ulp short of k (about 4 % of them), so those are nudged one ulp outward."""
    size = np.array([width, height], dtype=np.float64)
    normalised = pixels / size
    for _ in range(4):  # one step suffices for every k in [-W, 3W) and W a multiple of 16 up to 4096
        short = np.isfinite(pixels) & (np.trunc(normalised * size) != pixels)
        if not short.any():
            break
        normalised[short] = np.nextafter(normalised[short], np.copysign(np.inf, pixels[short]))
    return normalised
