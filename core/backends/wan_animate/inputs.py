"""From a reference image and driving frames to what ``WanAnimatePipeline`` takes in animate mode
(wan-animate-reference §3): the area-resized reference, the skeleton video and the face crops.
"""

from dataclasses import dataclass, field

import numpy as np

from core.backends.wan_animate.aapose import AAPose, to_aapose, to_aapose_sequence
from core.backends.wan_animate.draw import draw_aapose
from core.backends.wan_animate.face import FACE_SIZE, crop_face
from core.backends.wan_animate.retarget import retarget_sequence
from core.backends.wan_animate.sizes import padding_resize, resize_by_area
from core.contract.params import WAN_RESOLUTION_AREAS, WanAnimateParams
from core.contract.stages import Stage, StageTimer
from core.errors import MediaError, NoPersonError
from core.pose.extract import PoseEstimator, detect_driving_poses
from core.pose.records import Pose


@dataclass(frozen=True)
class WanInputs:
    """The pipeline's inputs, as arrays.

    Attributes:
        reference_image: (H, W, 3) uint8 RGB, the reference resized to the resolution's area; (H, W) is the
            output size.
        pose_frames: (N, H, W, 3) uint8 RGB, one skeleton drawing per driving frame.
        face_frames: (N, 512, 512, 3) uint8 RGB, one face crop per driving frame.
        driving_poses: the N poses as detected (what the pose cache keeps).
        timings: seconds per stage, ``{"pose": ...}``.
    """

    reference_image: np.ndarray
    pose_frames: np.ndarray
    face_frames: np.ndarray
    driving_poses: list[Pose]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pose_video_frames(self) -> np.ndarray:
        """The job's pose video: the skeleton drawn for each output frame."""
        return self.pose_frames


def prepare_wan_inputs(
    image: np.ndarray,
    driving_frames: np.ndarray,
    params: WanAnimateParams,
    estimator: PoseEstimator,
    *,
    driving_poses: list[Pose] | None = None,
    area: tuple[int, int] | None = None,
) -> WanInputs:
    """Detect the driving poses (unless given), draw them and crop the faces, as the reference's animate mode.

    Without retargeting, each skeleton is drawn at the driving frame's own size, then letterboxed to the
    reference's (§3 "Drawing"). With ``params.retarget``, the skeletons are retargeted from driving frame 0
    onto the reference's pose (detected on the resized reference) and drawn at the reference's size. The
    faces are cropped from the native frames either way.

    Args:
        image: (h, w, 3) uint8 RGB reference image at its own size.
        driving_frames: (N, h', w', 3) uint8 RGB, sampled at ``params.fps``.
        driving_poses: ``detect_driving_poses(driving_frames, estimator)`` from an earlier run.
        area: (W, H) whose product is the output's pixel count; None: ``params.resolution``'s
            (WAN_RESOLUTION_AREAS). A tiny test model passes its own, smaller one.

    Raises:
        MediaError: no driving frames. NoPersonError: no person in any driving frame; with ``params.retarget``,
            none in the reference image, or a body without height in it or in driving frame 0.
        ValueError: ``driving_poses`` is not one Pose per frame.
    """
    _check_inputs(image, driving_frames, driving_poses)
    timer = StageTimer()
    with timer.stage(Stage.pose):
        # 1. The reference at the resolution's area: its size is the output size.
        area_w, area_h = area or WAN_RESOLUTION_AREAS[params.resolution]
        reference = resize_by_area(image, area_w * area_h)
        height, width = reference.shape[:2]
        # 2. Driving poses as detected, then in the reference's keypoint layout.
        poses = driving_poses if driving_poses is not None else detect_driving_poses(driving_frames, estimator)
        if not any(pose.num_persons and pose.body_visible.any() for pose in poses):
            raise NoPersonError("no person found in any frame of the driving video")
        frame_hw = (driving_frames.shape[1], driving_frames.shape[2])
        aaposes = to_aapose_sequence(poses, frame_hw)
        # 3. Skeletons: retargeted onto the reference's pose and drawn at the output size, or drawn at the
        # frame size and letterboxed to it. Faces from the native frames.
        num_frames = len(aaposes)
        pose_frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
        face_frames = np.empty((num_frames, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
        if params.retarget:
            for index, retargeted in enumerate(retarget_sequence(aaposes, _reference_aapose(reference, estimator))):
                pose_frames[index] = draw_aapose(retargeted)
        else:
            for index, aapose in enumerate(aaposes):
                pose_frames[index] = padding_resize(draw_aapose(aapose), height, width)
        for index, aapose in enumerate(aaposes):
            face_frames[index] = crop_face(driving_frames[index], aapose)
    return WanInputs(reference, pose_frames, face_frames, list(poses), timer.timings)


def _reference_aapose(reference: np.ndarray, estimator: PoseEstimator) -> AAPose:
    """The resized reference's pose (its largest person), the destination of retargeting."""
    pose = estimator.estimate(reference)
    if not (pose.num_persons and pose.body_visible.any()):
        raise NoPersonError("no person found in the reference image, which retargeting needs: turn retarget off")
    return to_aapose(pose, reference.shape[:2])


def _check_inputs(image: np.ndarray, driving_frames: np.ndarray, driving_poses: list[Pose] | None) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if driving_frames.ndim != 4 or driving_frames.shape[3] != 3 or driving_frames.dtype != np.uint8:
        raise ValueError(
            f"driving_frames must be (N, h, w, 3) uint8, got {driving_frames.shape} {driving_frames.dtype}"
        )
    if driving_frames.shape[0] == 0:
        raise MediaError("the driving video has no frames to take the motion from")
    if driving_poses is not None and len(driving_poses) != driving_frames.shape[0]:
        raise ValueError(f"{len(driving_poses)} driving poses for {driving_frames.shape[0]} driving frames")
