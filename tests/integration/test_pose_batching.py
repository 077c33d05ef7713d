"""Batched DWPose sessions end to end: checked dynamic-batch copies, the batch-1 fallback, and the files on disk.

The tiny model's graphs reduce over whole tensors, batch included, so neither can be batched: they
test the fallback. The batched path runs on graphs built here: a YOLOX-shaped detector whose
Reshapes hard-code batch 1, and the tiny pose model with its reductions made per sample (its two
Reshapes to (1, 1, 1) still hard-code the batch).
"""

import hashlib
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.models.files import resolve_model_files
from core.pose.detector import DETECTOR_BATCH_SIZE, DETECTOR_SPEC, PersonDetector
from core.pose.onnx_session import SessionSpec, TensorSpec, create_batched_session, create_session
from core.pose.records import Pose
from core.pose.wholebody import POSE_BATCH_SIZE, POSE_MODEL_SPEC, WholebodyEstimator
from tests.support.media import moving_person_frames, person_image

LOGGER = "core.pose.onnx_session"
FALLBACK = "used with batch 1"


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_batch_one_detector(path: Path) -> Path:
    """A YOLOX-shaped detector, images (1, 3, 640, 640) -> output (1, 8400, 85), whose Reshapes say 1.

    Per stride: average-pool each cell, a 1x1 conv to 85 channels, sigmoid, Reshape to (1, 85, -1).
    Only stride-32 cells can score: objectness rises with the cell's redness (the figure's shirt).
    """
    nodes, initializers, levels = [], [], []
    for stride in (8, 16, 32):
        weight = np.zeros((85, 3, 1, 1), dtype=np.float32)
        bias = np.full(85, -5.0, dtype=np.float32)  # other classes: 0.7 %
        bias[:4] = [0.0, 0.0, 3.0, 3.0]  # centred in the cell, exp(0.95) cells wide
        bias[5] = 3.0  # person: 95 %
        if stride == 32:
            weight[4, :, 0, 0] = [0.1, -0.05, -0.05]  # 0.1 * (R - (G + B) / 2)
            bias[4] = -10.0  # the shirt is about 160 redder than grey
        else:
            bias[4] = -20.0
        initializers += [
            numpy_helper.from_array(weight, f"weight_{stride}"),
            numpy_helper.from_array(bias, f"bias_{stride}"),
            numpy_helper.from_array(np.array([1, 85, -1], dtype=np.int64), f"flat_{stride}"),
        ]
        nodes += [
            helper.make_node(
                "AveragePool", ["images"], [f"pool_{stride}"], kernel_shape=[stride] * 2, strides=[stride] * 2
            ),
            helper.make_node("Conv", [f"pool_{stride}", f"weight_{stride}", f"bias_{stride}"], [f"conv_{stride}"]),
            helper.make_node("Sigmoid", [f"conv_{stride}"], [f"head_{stride}"]),
            helper.make_node("Reshape", [f"head_{stride}", f"flat_{stride}"], [f"level_{stride}"]),  # (1, 85, n)
        ]
        levels.append(f"level_{stride}")
    nodes += [
        helper.make_node("Concat", levels, ["heads"], axis=2),  # (1, 85, 8400)
        helper.make_node("Transpose", ["heads"], ["output"], perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "batch_one_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8400, 85])],
        initializers,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def write_per_sample_pose_model(tiny_pose_model: Path, path: Path) -> Path:
    """The tiny pose model with every whole-tensor reduction limited to dims 1..3 (opset 17)."""
    model = onnx.load(tiny_pose_model)
    axes = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "per_sample_axes")
    model.graph.initializer.append(axes)
    for node in model.graph.node:
        if node.op_type == "ReduceSum":  # axes as an input
            if len(node.input) == 1:
                node.input.append(axes.name)
        elif node.op_type.startswith("Reduce") and not any(a.name == "axes" for a in node.attribute):
            node.attribute.append(helper.make_attribute("axes", [1, 2, 3]))
    return _save(model, path)


def write_sample_mixing_model(path: Path) -> Path:
    """(1, 3, 8, 8) -> (1, 3, 8, 8): x minus the mean of the whole tensor, which a batch shares."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=1),
            helper.make_node("Sub", ["x", "mean"], ["y"]),
        ],
        "mixing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def write_batch_one_concat_model(path: Path) -> Path:
    """(1, 3, 8, 8) -> (1, 4, 8, 8): x with a constant channel appended, which only fits batch 1."""
    graph = helper.make_graph(
        [helper.make_node("Concat", ["x", "extra"], ["y"], axis=1)],
        "concat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(np.ones((1, 1, 8, 8), dtype=np.float32), "extra")],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


SMALL_SPEC = SessionSpec(
    what="a small test model", inputs=(TensorSpec("x", (1, 3, 8, 8)),), outputs=(TensorSpec("y", (1, "c", 8, 8)),)
)


@pytest.fixture(scope="module")
def batchable_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("batchable")
    write_batch_one_detector(root / "detector.onnx")
    write_per_sample_pose_model(resolve_model_files(tiny_model_dir).pose_model, root / "pose.onnx")
    return root


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """20 frames (8 + 8 + 4 detector batches) of a walking figure, and one still image of another size."""
    return [*moving_person_frames(19), person_image(256, 192)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_close(left: Pose, right: Pose) -> None:
    """Scores within float rounding; points within one SimCC bin.

    Batched kernels round differently (by ~5e-7 here), and the tiny pose model has exact ties between
    neighbouring bins, so an argmax may move by one bin: 0.5 crop pixels, at most 0.0025 of the frame
    width for these frames.
    """
    for name in ("body_scores", "face_scores", "hand_scores"):
        np.testing.assert_allclose(getattr(left, name), getattr(right, name), rtol=0, atol=1e-5, err_msg=name)
    for name in ("body", "face", "hands"):
        np.testing.assert_allclose(getattr(left, name), getattr(right, name), rtol=0, atol=2.5e-3, err_msg=name)


def test_batched_sessions_are_checked_used_and_give_the_per_frame_poses(
    batchable_dir: Path, frames: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    detector, pose = batchable_dir / "detector.onnx", batchable_dir / "pose.onnx"
    batched = WholebodyEstimator(
        create_batched_session(detector, "cpu", DETECTOR_SPEC), create_batched_session(pose, "cpu", POSE_MODEL_SPEC)
    )
    per_frame = WholebodyEstimator(
        create_session(detector, "cpu", DETECTOR_SPEC), create_session(pose, "cpu", POSE_MODEL_SPEC)
    )
    assert batched.detector.batch_size == DETECTOR_BATCH_SIZE and batched.batch_size == POSE_BATCH_SIZE
    assert per_frame.detector.batch_size == 1 and per_frame.batch_size == 1
    assert "detector.onnx: dynamic-batch copy checked" in caplog.text and FALLBACK not in caplog.text
    # Detections first: every frame finds the figure, in 3 detector calls rather than 20.
    boxes = batched.detector.detect_batch(frames)
    for frame, frame_boxes in zip(frames, boxes, strict=True):
        expected = per_frame.detector.detect(frame)
        assert len(expected) >= 1
        np.testing.assert_allclose(frame_boxes, expected, rtol=0, atol=1e-3)
    # Then whole poses, through estimate_batch as extract.estimate_poses calls it.
    poses = batched.estimate_batch(frames)
    for frame, frame_pose in zip(frames, poses, strict=True):
        _assert_close(frame_pose, per_frame.estimate(frame))


def test_tiny_model_falls_back_to_batch_1_with_one_log_line_each_and_keeps_its_poses(
    tiny_model_dir: Path, tmp_path: Path, frames: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    # Copies at paths of their own, which this process has not checked yet.
    files = resolve_model_files(tiny_model_dir)
    detector_path = Path(shutil.copy(files.detector, tmp_path / files.detector.name))
    pose_path = Path(shutil.copy(files.pose_model, tmp_path / files.pose_model.name))
    caplog.set_level(logging.INFO, logger=LOGGER)
    detector_session = create_batched_session(detector_path, "cpu", DETECTOR_SPEC)
    pose_session = create_batched_session(pose_path, "cpu", POSE_MODEL_SPEC)
    # The file's own sessions, each checked once and logged once.
    assert detector_session is create_session(detector_path, "cpu") and pose_session is create_session(pose_path, "cpu")
    assert create_batched_session(detector_path, "cpu", DETECTOR_SPEC) is detector_session
    fallbacks = [record.getMessage() for record in caplog.records if FALLBACK in record.getMessage()]
    assert len(fallbacks) == 2
    assert (
        fallbacks[0].startswith("yolox_l.onnx: used with batch 1") and "output output is [1, 8400, 85]" in fallbacks[0]
    )
    assert fallbacks[1].startswith("dw-ll_ucoco_384.onnx: used with batch 1")
    estimator = WholebodyEstimator(detector_session, pose_session)
    assert estimator.detector.batch_size == 1 and estimator.batch_size == 1
    for frame, pose in zip(frames, estimator.estimate_batch(frames), strict=True):
        _assert_close(pose, estimator.estimate(frame))


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (write_sample_mixing_model, r"output y differs by up to"),
        (write_batch_one_concat_model, r"(Fail|RuntimeException|InvalidArgument).*Concat"),
    ],
    ids=["mixes-samples", "fails-batched"],
)
def test_a_graph_that_assumes_batch_1_falls_back_and_gives_the_file_results(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, write: Callable[[Path], Path], reason: str
) -> None:
    path = write(tmp_path / "model.onnx")
    caplog.set_level(logging.INFO, logger=LOGGER)
    session = create_batched_session(path, "cpu", SMALL_SPEC)
    assert session is create_session(path, "cpu")
    assert session.get_inputs()[0].shape[0] == 1
    (message,) = [record.getMessage() for record in caplog.records if FALLBACK in record.getMessage()]
    assert message.startswith("model.onnx: used with batch 1")
    assert re.search(reason, message), message


def test_model_files_on_disk_are_unchanged_by_loading(
    batchable_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # A fresh copy of each: the batched ones (rewritten and checked) and a tiny one (fallback).
    tiny_detector = resolve_model_files(tiny_model_dir).detector
    sources = [batchable_dir / "detector.onnx", batchable_dir / "pose.onnx", tiny_detector]
    paths = [tmp_path / name for name in ("detector.onnx", "pose.onnx", "tiny_detector.onnx")]
    for source, path in zip(sources, paths, strict=True):
        shutil.copy(source, path)
    before = {path: (_sha256(path), path.stat().st_mtime_ns) for path in paths}
    create_batched_session(paths[0], "cpu", DETECTOR_SPEC)
    create_batched_session(paths[1], "cpu", POSE_MODEL_SPEC)
    create_batched_session(paths[2], "cpu", DETECTOR_SPEC)
    assert {path: (_sha256(path), path.stat().st_mtime_ns) for path in paths} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.onnx", "pose.onnx", "tiny_detector.onnx"]


def test_from_model_files_takes_the_batched_sessions(tiny_model_dir: Path) -> None:
    files = resolve_model_files(tiny_model_dir)
    estimator = WholebodyEstimator.from_model_files(files, device="cpu")
    assert estimator.detector.session is create_batched_session(files.detector, "cpu", DETECTOR_SPEC)
    assert estimator.pose_session is create_batched_session(files.pose_model, "cpu", POSE_MODEL_SPEC)


def test_detect_batch_of_no_frames_is_empty(batchable_dir: Path) -> None:
    detector = PersonDetector(create_batched_session(batchable_dir / "detector.onnx", "cpu", DETECTOR_SPEC))
    assert detector.detect_batch([]) == []
