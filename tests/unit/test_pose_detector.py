"""YOLOX letterbox, anchor decoding, NMS and person selection, pinned to reference §6 "Detector"."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.pose.detector import PersonDetector, decode_yolox, letterbox, multiclass_nms

NUM_ANCHORS = 80 * 80 + 40 * 40 + 20 * 20


def test_letterbox_scales_by_the_limiting_side_and_pads_bottom_right_with_114() -> None:
    image = np.full((333, 500, 3), (10, 20, 30), dtype=np.uint8)
    batch, ratio = letterbox(image)
    assert batch.shape == (1, 3, 640, 640) and batch.dtype == np.float32
    assert ratio == 640 / 500  # min(640 / 333, 640 / 500)
    # int(333 * 1.28) = 426 rows of image at the top, then padding; all 640 columns are image.
    np.testing.assert_array_equal(batch[0, :, :426, :], np.broadcast_to([[[10.0]], [[20.0]], [[30.0]]], (3, 426, 640)))
    assert (batch[0, :, 426:, :] == 114.0).all()


def test_letterbox_keeps_channel_order_and_raw_0_to_255_values() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[..., 0] = 255  # red in RGB: no BGR swap, no mean/std
    batch, ratio = letterbox(image)
    assert ratio == 3.2  # min(6.4, 3.2)
    assert batch[0, 0, 0, 0] == 255.0 and batch[0, 1, 0, 0] == 0.0 and batch[0, 2, 0, 0] == 0.0
    assert batch[0, 0, 319, 639] == 255.0 and batch[0, 0, 320, 0] == 114.0


def test_decode_yolox_walks_strides_8_16_32_row_major() -> None:
    raw = np.zeros((NUM_ANCHORS, 85), dtype=np.float32)
    raw[81, :4] = [0.5, 0.25, np.log(2.0), 0.0]  # stride 8, grid (x=1, y=1)
    raw[6400 + 40 + 2, :4] = [0.0, 0.0, 0.0, np.log(3.0)]  # stride 16, grid (x=2, y=1)
    raw[8000 + 20 * 19 + 19, :4] = [0.0, 0.0, 0.0, 0.0]  # stride 32, last cell (19, 19)
    raw[81, 4:7] = [0.5, 0.2, 0.8]  # objectness, class 0, class 1
    boxes, scores = decode_yolox(raw, (640, 640))
    assert boxes.shape == (NUM_ANCHORS, 4) and scores.shape == (NUM_ANCHORS, 80)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    np.testing.assert_allclose(boxes[81], [4.0, 6.0, 20.0, 14.0], rtol=1e-6)  # xy (12, 10), wh (16, 8)
    np.testing.assert_allclose(boxes[6442], [24.0, -8.0, 40.0, 40.0], rtol=1e-6)  # xy (32, 16), wh (16, 48)
    np.testing.assert_array_equal(boxes[8399], [592.0, 592.0, 624.0, 624.0])  # xy 19 * 32 = 608, wh 32
    np.testing.assert_array_equal(boxes[0], [-4.0, -4.0, 4.0, 4.0])
    np.testing.assert_allclose(scores[81, :2], [0.1, 0.4], rtol=1e-6)
    assert (scores[0] == 0).all()


def test_nms_uses_the_plus_one_area_convention() -> None:
    # With +1: IoU = 77 / (121 + 121 - 77) = 0.467 > 0.45, suppressed. Without: 60 / 140 = 0.43, kept.
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], dtype=np.float32)
    scores = np.array([[0.9], [0.8]], dtype=np.float32)
    detections = multiclass_nms(boxes, scores)
    np.testing.assert_array_equal(detections, [[0, 0, 10, 10, np.float32(0.9), 0]])


def test_nms_is_greedy_in_descending_score_order() -> None:
    # A (0.9) suppresses B (IoU 0.57); C overlaps B (0.57) but not A (0.29), and B is already gone, so C
    # stays. The input order is shuffled: only the scores decide the visiting order.
    boxes = np.array([[6, 0, 16, 10], [0, 0, 10, 10], [3, 0, 13, 10]], dtype=np.float32)  # C, A, B
    scores = np.array([[0.7], [0.9], [0.8]], dtype=np.float32)
    detections = multiclass_nms(boxes, scores)
    np.testing.assert_array_equal(detections[:, :4], boxes[[1, 0]])
    np.testing.assert_array_equal(detections[:, 4], scores[[1, 0], 0])


def test_nms_is_class_aware_and_keeps_scores_strictly_above_0_1() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([[0.5, 0.9], [0.0, 0.0], [0.1, 0.11]], dtype=np.float32)
    detections = multiclass_nms(boxes, scores)
    # Class 0: box 0 (box 2's 0.1 is not above 0.1). Class 1: box 0 (0.9) and box 2 (0.11), not
    # suppressed by the class-0 box at the same place.
    np.testing.assert_array_equal(detections[:, 5], [0, 1, 1])
    np.testing.assert_array_equal(detections[:, 4], np.array([0.5, 0.9, 0.11], dtype=np.float32))
    assert detections.dtype == np.float64


def test_nms_returns_an_empty_array_when_nothing_scores() -> None:
    detections = multiclass_nms(np.zeros((3, 4), dtype=np.float32), np.full((3, 2), 0.05, dtype=np.float32))
    assert detections.shape == (0, 6)


def _constant_detector(path: Path, raw: np.ndarray) -> ort.InferenceSession:
    """A YOLOX-shaped ONNX file whose output is ``raw`` (1, 8400, 85) whatever the image."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, NUM_ANCHORS, 85])
    nodes = [
        helper.make_node("ReduceMin", ["images"], ["low"], keepdims=0),  # a scalar the output can depend on
        helper.make_node("Mul", ["low", "zero"], ["nothing"]),
        helper.make_node("Add", ["raw", "nothing"], ["output"]),
    ]
    initializers = [numpy_helper.from_array(raw[None], "raw"), numpy_helper.from_array(np.float32(0), "zero")]
    graph = helper.make_graph(nodes, "constant_detector", [image], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _person_anchor(raw: np.ndarray, index: int, score: float, class_index: int = 0) -> None:
    raw[index, 4] = 1.0
    raw[index, 5 + class_index] = score


@pytest.fixture(scope="module")
def detector_raw() -> np.ndarray:
    raw = np.zeros((NUM_ANCHORS, 85), dtype=np.float32)
    raw[:, 2:4] = np.log(0.5)  # small boxes everywhere, far apart from each other
    _person_anchor(raw, 10 * 80 + 10, 0.5)  # stride 8, grid (10, 10): box (80, 80) +- 2
    _person_anchor(raw, 30 * 80 + 40, 0.9)  # grid (40, 30): (320, 240)
    _person_anchor(raw, 5 * 80 + 70, 0.35)  # grid (70, 5): (560, 40)
    _person_anchor(raw, 60 * 80 + 5, 0.25)  # below 0.3: dropped after NMS
    _person_anchor(raw, 70 * 80 + 70, 0.95, class_index=1)  # not a person
    return raw


def test_person_detector_keeps_persons_above_0_3_best_first_in_image_pixels(
    tmp_path: Path, detector_raw: np.ndarray
) -> None:
    detector = PersonDetector(_constant_detector(tmp_path / "det.onnx", detector_raw))
    image = np.zeros((160, 1280, 3), dtype=np.uint8)  # ratio 0.5: boxes come back doubled
    boxes = detector.detect(image)
    assert boxes.dtype == np.float32
    np.testing.assert_allclose(
        boxes,
        2 * np.array([[318, 238, 322, 242], [78, 78, 82, 82], [558, 38, 562, 42]], dtype=np.float32),
        rtol=1e-6,
    )


def test_person_detector_returns_no_boxes_without_persons(tmp_path: Path) -> None:
    raw = np.zeros((NUM_ANCHORS, 85), dtype=np.float32)
    _person_anchor(raw, 100, 0.9, class_index=3)
    detector = PersonDetector(_constant_detector(tmp_path / "det.onnx", raw))
    assert detector.detect(np.zeros((64, 64, 3), dtype=np.uint8)).shape == (0, 4)
