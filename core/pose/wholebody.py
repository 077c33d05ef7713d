"""DWPose whole-body estimation: detect persons, run the pose model per person, convert to ``Pose``.

Follows the original's ``wholebody.py`` and ``dwpose_detector.py`` (reference §6): COCO-WholeBody
133 keypoints become OpenPose-18 body + 68 face + 2 x 21 hand points, normalised to the frame. P is
the number of persons in a frame, N the number of crops in a batch.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from core.errors import ModelFilesError
from core.pose.detector import DETECTOR_SPEC, PersonDetector
from core.pose.keypoints import PIXEL_MEAN, PIXEL_STD, crop_person, crop_to_image, decode_simcc
from core.pose.onnx_session import SessionSpec, TensorSpec, create_batched_session
from core.pose.records import Pose

POSE_MODEL_SPEC = SessionSpec(
    what="the DWPose whole-body model",
    inputs=(TensorSpec("input", (1, 3, 384, 288)),),
    outputs=(TensorSpec("simcc_x", (1, 133, 576)), TensorSpec("simcc_y", (1, 133, 768))),
    # Crops are normalised per channel: 0..255 maps to about -2.1..2.6.
    input_range=(float(np.min(-PIXEL_MEAN / PIXEL_STD)), float(np.max((255.0 - PIXEL_MEAN) / PIXEL_STD))),
)
POSE_BATCH_SIZE = 32  # crops per pose-model call when the session has a dynamic batch
NECK_SCORE_THRESHOLD = 0.3  # the neck counts as seen (score 1.0) when both shoulders score above this

# COCO-WholeBody -> OpenPose-18. After the neck is inserted at index 17, OpenPose slot
# OPENPOSE_SLOTS[i] takes the point at COCO_SOURCES[i]; the other slots (0 nose, 5 L-shoulder,
# 11 L-hip) keep their index.
OPENPOSE_SLOTS = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)
COCO_SOURCES = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)
NECK_INDEX = 17
LEFT_SHOULDER, RIGHT_SHOULDER = 5, 6
FACE = slice(24, 92)  # 68 points, post-insert indices
LEFT_HAND = slice(92, 113)  # 21 points
RIGHT_HAND = slice(113, 134)  # 21 points
FEET = slice(18, 24)  # 6 points, raw 17..22 (toes and heels), post-insert indices


class DWPoseFiles(Protocol):
    """Where a model directory keeps the two DWPose files (``ModelFiles``, ``WanModelFiles``)."""

    @property
    def detector(self) -> Path: ...

    @property
    def pose_model(self) -> Path: ...


@dataclass(frozen=True)
class _Crop:
    """One person crop waiting for the pose model."""

    image_index: int
    pixels: np.ndarray  # (3, h, w) float32
    center: np.ndarray  # (2,) float64
    scale: np.ndarray  # (2,) float64, aspect-fixed


class WholebodyEstimator:
    """YOLOX person detector + DWPose whole-body model on ONNX Runtime."""

    def __init__(self, detector_session: ort.InferenceSession, pose_session: ort.InferenceSession) -> None:
        self.detector = PersonDetector(detector_session)
        self.pose_session = pose_session
        pose_input = pose_session.get_inputs()[0]
        batch, _, height, width = pose_input.shape
        if not (isinstance(height, int) and isinstance(width, int)):
            raise ModelFilesError(
                f"{POSE_MODEL_SPEC.what} needs a fixed input height and width, got {list(pose_input.shape)}"
            )
        self.input_size = (width, height)  # (w, h), as the original reads it from the session
        self.input_name = pose_input.name
        self.output_names = [output.name for output in pose_session.get_outputs()]
        # The released file has a static batch of 1; a dynamic batch (the file's, or the checked copy
        # from create_batched_session) lets us send many crops at once.
        self.batch_size = POSE_BATCH_SIZE if not isinstance(batch, int) else 1

    @classmethod
    def from_model_files(cls, files: DWPoseFiles, device: str = "auto") -> "WholebodyEstimator":
        """Build from the model directory's DWPose files; sessions are shared within the process.

        Both files run batched where their dynamic-batch copy matches them (``create_batched_session``).
        """
        return cls(
            create_batched_session(files.detector, device, DETECTOR_SPEC),
            create_batched_session(files.pose_model, device, POSE_MODEL_SPEC),
        )

    def runtime(self) -> dict[str, str]:
        """What, besides the model files, decides the numbers this estimator gives: the onnxruntime version,
        its execution providers, and whether each model runs batched (batched kernels round differently)."""
        return {
            "onnxruntime": ort.__version__,
            "detector_providers": ",".join(self.detector.session.get_providers()),
            "pose_providers": ",".join(self.pose_session.get_providers()),
            "detector_batch_size": str(self.detector.batch_size),
            "pose_batch_size": str(self.batch_size),
        }

    def estimate(self, image: np.ndarray) -> Pose:
        """(H, W, 3) uint8 RGB -> the Pose of every person in it (at least one, see estimate_batch)."""
        return self.estimate_batch([image])[0]

    def estimate_batch(self, images: Sequence[np.ndarray]) -> list[Pose]:
        """One Pose per (H, W, 3) uint8 RGB image.

        A frame with no detected person is treated as one person filling the whole frame, as the
        original does, so every Pose has at least one person.
        """
        if not images:
            return []
        # 1. Detect (frames batched where the detector allows it), and crop every person of every image.
        boxes = self.detector.detect_batch(images)
        crops = [crop for index, image in enumerate(images) for crop in self._crop_persons(index, image, boxes[index])]
        # 2. Pose model over all crops, batched where the file allows it.
        simcc_x, simcc_y = self._run_pose_model(np.stack([crop.pixels for crop in crops]))
        # 3. Decode and map back to image pixels.
        locations, scores = decode_simcc(simcc_x, simcc_y)  # (N, 133, 2), (N, 133) float32
        keypoints = np.stack(
            [crop_to_image(locations[i], crop.center, crop.scale, self.input_size) for i, crop in enumerate(crops)]
        )  # (N, 133, 2) float64
        # 4. Group per image and convert to OpenPose layout.
        image_indices = np.array([crop.image_index for crop in crops])
        return [
            to_pose(keypoints[image_indices == index], scores[image_indices == index], image.shape[:2])
            for index, image in enumerate(images)
        ]

    def _crop_persons(self, image_index: int, image: np.ndarray, boxes: np.ndarray) -> list[_Crop]:
        if len(boxes) == 0:
            height, width = image.shape[:2]
            boxes = np.array([[0, 0, width, height]])
        crops = []
        for box in boxes:
            pixels, center, scale = crop_person(image, box, self.input_size)
            crops.append(_Crop(image_index, pixels, center, scale))
        return crops

    def _run_pose_model(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, h, w) float32 -> simcc_x (N, K, Wx), simcc_y (N, K, Wy)."""
        outputs_x, outputs_y = [], []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            simcc_x, simcc_y = self.pose_session.run(self.output_names, {self.input_name: chunk})
            outputs_x.append(simcc_x)
            outputs_y.append(simcc_y)
        return np.concatenate(outputs_x), np.concatenate(outputs_y)


def to_pose(keypoints: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int]) -> Pose:
    """COCO-WholeBody keypoints (P, 133, 2) in pixels and scores (P, 133) -> normalised Pose."""
    height, width = image_hw
    # 1. (x, y, score) per point in float64, as the original concatenates them.
    info = np.concatenate([keypoints, scores[..., None]], axis=-1).astype(np.float64)  # (P, 133, 3)
    # 2. Neck: mean of the shoulders; its score is binary (both shoulders above 0.3 or not).
    neck = info[:, [LEFT_SHOULDER, RIGHT_SHOULDER]].mean(axis=1)  # (P, 3)
    neck[:, 2] = np.logical_and(
        info[:, LEFT_SHOULDER, 2] > NECK_SCORE_THRESHOLD, info[:, RIGHT_SHOULDER, 2] > NECK_SCORE_THRESHOLD
    )
    info = np.insert(info, NECK_INDEX, neck, axis=1)  # (P, 134, 3)
    # 3. OpenPose body order; the right side reads all sources before any slot is written.
    info[:, list(OPENPOSE_SLOTS)] = info[:, list(COCO_SOURCES)]
    # 4. Normalise to the frame.
    info[..., 0] /= float(width)
    info[..., 1] /= float(height)
    points, point_scores = info[..., :2], info[..., 2]
    return Pose(
        body=points[:, :18].copy(),
        body_scores=point_scores[:, :18].copy(),
        face=points[:, FACE].copy(),
        face_scores=point_scores[:, FACE].copy(),
        hands=np.concatenate([points[:, LEFT_HAND], points[:, RIGHT_HAND]]),  # all left, then all right
        hand_scores=np.concatenate([point_scores[:, LEFT_HAND], point_scores[:, RIGHT_HAND]]),
        feet=points[:, FEET].copy(),
        feet_scores=point_scores[:, FEET].copy(),
    )
