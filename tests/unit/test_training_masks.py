"""Hand boxes and latent-resolution loss weights for regional loss amplification."""

import numpy as np

from core.pose.records import Pose
from core.training.masks import MARGIN_PX, hand_boxes, hand_mask, latent_loss_weights


def _pose(hand_centres: list[tuple[float, float]], hand_scores: list[float], num_persons: int = 1) -> Pose:
    """Hands (left hands then right hands) as 21 points spread 0.05 around each centre."""
    offsets = np.stack(np.meshgrid(np.linspace(-0.05, 0.05, 7), np.linspace(-0.05, 0.05, 3)), -1).reshape(21, 2)
    hands = np.stack([np.array(centre) + offsets for centre in hand_centres])
    scores = np.stack([np.full(21, score) for score in hand_scores])
    return Pose(
        body=np.zeros((num_persons, 18, 2)), body_scores=np.ones((num_persons, 18)),
        face=np.zeros((num_persons, 68, 2)), face_scores=np.ones((num_persons, 68)),
        hands=hands, hand_scores=scores,
    )  # fmt: skip


def test_a_confident_hand_gets_a_box_with_the_margin() -> None:
    boxes = hand_boxes(_pose([(0.5, 0.5), (0.2, 0.2)], [0.9, 0.9]), 200, 200, threshold=0.5)
    assert len(boxes) == 2
    left, top, right, bottom = boxes[0]
    # Points span 90..110 px both ways: a 20 px box, margin max(8, 10 % of 20) each side, outward-rounded.
    assert (left, top) == (90 - MARGIN_PX, 90 - MARGIN_PX)
    assert right in (110 + MARGIN_PX, 111 + MARGIN_PX) and bottom in (110 + MARGIN_PX, 111 + MARGIN_PX)


def test_one_score_below_the_threshold_removes_the_box() -> None:
    pose = _pose([(0.5, 0.5), (0.2, 0.2)], [0.9, 0.9])
    pose.hand_scores[0, 7] = 0.49  # one of 21 below 0.5; the mean is still far above
    boxes = hand_boxes(pose, 200, 200, threshold=0.5)
    assert len(boxes) == 1
    assert boxes[0][0] < 60  # only the hand at 0.2 remains


def test_boxes_are_clipped_at_the_border() -> None:
    boxes = hand_boxes(_pose([(0.02, 0.99)], [0.9]), 100, 100, threshold=0.5)
    left, top, right, bottom = boxes[0]
    assert left == 0 and bottom == 100 and right > 0 and top < 100


def test_two_persons_give_up_to_four_boxes() -> None:
    pose = _pose([(0.2, 0.2), (0.7, 0.2), (0.2, 0.7), (0.7, 0.7)], [0.9, 0.9, 0.9, 0.1], num_persons=2)
    assert len(hand_boxes(pose, 200, 200, threshold=0.5)) == 3
    pose.hand_scores[3] = 0.9
    assert len(hand_boxes(pose, 200, 200, threshold=0.5)) == 4


def test_latent_weights_pool_the_mask_by_area_and_keep_frame_zero_at_one() -> None:
    masks = np.zeros((3, 32, 48), dtype=np.float32)
    masks[1, 0:8, 0:8] = 1  # one full latent cell
    masks[1, 8:12, 8:16] = 1  # half of another
    masks[0] = 1  # the reference frame: never amplified
    weights = latent_loss_weights(masks, factor=10.0)
    assert weights.shape == (3, 4, 6)
    assert np.all(weights[0] == 1) and np.all(weights[2] == 1)
    assert weights[1, 0, 0] == 10 and weights[1, 1, 1] == 5.5
    # Total extra weight equals the masked area in cells times (factor - 1).
    assert np.isclose((weights[1] - 1).sum(), 9 * (64 + 32) / 64)


def test_mask_is_zero_without_reliable_hands() -> None:
    assert not hand_mask(_pose([(0.5, 0.5)], [0.3]), 64, 64, threshold=0.5).any()
    assert hand_mask(_pose([(0.5, 0.5)], [0.3]), 64, 64, threshold=0.2).any()
