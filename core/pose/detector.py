"""YOLOX-L person detector, pre- and post-processing exactly as the original's ``onnxdet.py`` (reference §6).

Letterbox to 640x640 (no normalisation), decode the 8400 anchors of strides 8/16/32, class-aware
NMS, then keep confident persons. A is the number of anchors, C the number of classes.
"""

from collections.abc import Sequence

import cv2
import numpy as np
import onnxruntime as ort

from core.pose.onnx_session import SessionSpec, TensorSpec

INPUT_SIZE = 640  # used when the file leaves its input size dynamic; the original hard-codes it
PAD_VALUE = 114  # letterbox canvas colour
STRIDES = (8, 16, 32)
NMS_THRESHOLD = 0.45  # IoU above this suppresses the lower-scored box
NMS_SCORE_THRESHOLD = 0.1  # candidates for NMS: class score strictly above this
PERSON_SCORE_THRESHOLD = 0.3  # kept persons: score strictly above this
PERSON_CLASS = 0  # COCO "person"
# Frames per detector call when the session has a dynamic batch. YOLOX-L is ~150 GFLOPs per 640x640
# frame, so a few frames already fill a GPU; more only grow onnxruntime's memory arena, which keeps its
# peak for the UNet to do without. 8 frames are 39 MB of input.
DETECTOR_BATCH_SIZE = 8

DETECTOR_SPEC = SessionSpec(
    what="the YOLOX-L person detector",
    inputs=(TensorSpec("images", (1, 3, "height", "width")),),
    outputs=(TensorSpec("output", (1, "anchors", 85)),),
    input_range=(0.0, 255.0),  # letterboxed pixels, not normalised
)


def letterbox(image: np.ndarray, input_hw: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 -> ((1, 3, h, w) float32 in 0..255, ratio r).

    The image is resized by r = min(h / H, w / W) with INTER_LINEAR and placed at the top-left of a
    canvas filled with 114.
    """
    height, width = image.shape[:2]
    canvas = np.full((input_hw[0], input_hw[1], 3), PAD_VALUE, dtype=np.uint8)
    ratio = min(input_hw[0] / height, input_hw[1] / width)
    new_w, new_h = int(width * ratio), int(height * ratio)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    chw = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)  # (3, h, w)
    return chw[None], ratio


def decode_yolox(raw: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Raw head output (A, 5 + C) -> boxes (A, 4) xyxy and scores (A, C), float32, in input pixels.

    Anchors run over the stride-8, 16 and 32 grids in turn, row-major with x fastest:
    xy = (out_xy + grid) * stride, wh = exp(out_wh) * stride, score = objectness * class probability.
    """
    grids, strides = [], []
    for stride in STRIDES:
        grid_x, grid_y = np.meshgrid(np.arange(input_hw[1] // stride), np.arange(input_hw[0] // stride))
        grids.append(np.stack([grid_x, grid_y], axis=-1).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), stride))
    grid = np.concatenate(grids)  # (A, 2) int
    stride_column = np.concatenate(strides)  # (A, 1) int
    # The original writes int64 arithmetic back into the float32 output: compute in float64, then
    # round once to float32, as it does.
    xy = ((raw[:, :2] + grid) * stride_column).astype(np.float32)
    wh = (np.exp(raw[:, 2:4]) * stride_column).astype(np.float32)
    scores = raw[:, 4:5] * raw[:, 5:]
    boxes = np.concatenate([xy - wh / 2.0, xy + wh / 2.0], axis=1)  # (A, 4) float32
    return boxes, scores


def multiclass_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    nms_thr: float = NMS_THRESHOLD,
    score_thr: float = NMS_SCORE_THRESHOLD,
) -> np.ndarray:
    """Class-aware greedy NMS over boxes (A, 4) and scores (A, C).

    Returns:
        (D, 6) float64 rows (x1, y1, x2, y2, score, class), class by class, each class in
        descending score order; (0, 6) when nothing passes.
    """
    detections = []
    for class_index in range(scores.shape[1]):
        class_scores = scores[:, class_index]
        valid = class_scores > score_thr
        if not valid.any():
            continue
        valid_boxes, valid_scores = boxes[valid], class_scores[valid]
        keep = _nms(valid_boxes, valid_scores, nms_thr)
        classes = np.full((len(keep), 1), float(class_index))
        detections.append(np.concatenate([valid_boxes[keep], valid_scores[keep, None], classes], axis=1))
    if not detections:
        return np.zeros((0, 6))
    return np.concatenate(detections)


class PersonDetector:
    """Finds people in RGB frames with a YOLOX session (``onnx_session.create_batched_session`` + DETECTOR_SPEC).

    A session with a dynamic batch gets up to ``DETECTOR_BATCH_SIZE`` frames per call; the released
    file's own session (static batch 1) gets one.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        batch, _, height, width = session.get_inputs()[0].shape
        self.input_hw = (
            height if isinstance(height, int) else INPUT_SIZE,
            width if isinstance(width, int) else INPUT_SIZE,
        )
        self.batch_size = DETECTOR_BATCH_SIZE if not isinstance(batch, int) else 1

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (P, 4) float32 xyxy person boxes in image pixels, best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One ``detect`` result per (H, W, 3) uint8 RGB image, ``batch_size`` images per model call."""
        detections: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            letterboxed = [letterbox(image, self.input_hw) for image in images[start : start + self.batch_size]]
            batch = np.concatenate([pixels for pixels, _ in letterboxed])  # (n, 3, h, w)
            raw = self.session.run(None, {self.input_name: batch})[0]  # (n, A, 5 + C)
            detections.extend(self._persons(row, ratio) for row, (_, ratio) in zip(raw, letterboxed, strict=True))
        return detections

    def _persons(self, raw: np.ndarray, ratio: float) -> np.ndarray:
        """One image's raw head output (A, 5 + C) -> (P, 4) float32 person boxes in image pixels."""
        boxes, scores = decode_yolox(raw, self.input_hw)
        boxes /= ratio
        detections = multiclass_nms(boxes, scores)
        # Class 0 comes first out of NMS and is already in descending score order.
        is_person = (detections[:, 4] > PERSON_SCORE_THRESHOLD) & (detections[:, 5] == PERSON_CLASS)
        return detections[is_person, :4].astype(np.float32)


def _nms(boxes: np.ndarray, scores: np.ndarray, nms_thr: float) -> list[int]:
    """Greedy single-class NMS; areas use the (x2 - x1 + 1) * (y2 - y1 + 1) pixel convention."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= nms_thr]
    return keep
