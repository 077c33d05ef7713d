"""WholebodyEstimator and the ONNX sessions end to end, on small ONNX files with the DWPose signatures."""

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.errors import ModelFilesError
from core.models.files import DETECTOR_FILE, POSE_MODEL_FILE, resolve_model_files
from core.pose.detector import DETECTOR_SPEC
from core.pose.keypoints import crop_person, crop_to_image, decode_simcc
from core.pose.onnx_session import create_session
from core.pose.records import Pose
from core.pose.wholebody import POSE_MODEL_SPEC, WholebodyEstimator, to_pose

NUM_ANCHORS = 8400


def _save(path: Path, graph: onnx.GraphProto) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_detector(path: Path, raw: np.ndarray) -> Path:
    """A YOLOX-shaped file whose output is ``raw`` (8400, 85) plus 0 * min(image)."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, NUM_ANCHORS, 85])
    nodes = [
        helper.make_node("ReduceMin", ["images"], ["low"], keepdims=0),
        helper.make_node("Mul", ["low", "zero"], ["nothing"]),
        helper.make_node("Add", ["raw", "nothing"], ["output"]),
    ]
    initializers = [numpy_helper.from_array(raw[None], "raw"), numpy_helper.from_array(np.float32(0), "zero")]
    return _save(path, helper.make_graph(nodes, "detector", [image], [output], initializers))


def write_pose_model(path: Path, batch: int | str, seed: int = 0) -> Path:
    """A SimCC-shaped file (batch, 3, 384, 288) -> simcc_x (batch, 133, 576), simcc_y (batch, 133, 768).

    Each keypoint's SimCC vectors are a per-crop feature (pooled pixels times a random matrix) times a
    random row plus a random bias, so argmax and score both depend on the crop.
    """
    rng = np.random.default_rng(seed)
    weights = {
        "shape": np.array([-1, 36], dtype=np.int64),
        "mix": rng.normal(size=(36, 133)).astype(np.float32),
        "axis": np.array([2], dtype=np.int64),
        "row_x": rng.normal(size=(133, 576)).astype(np.float32),
        "bias_x": rng.normal(scale=0.5, size=(133, 576)).astype(np.float32),
        "row_y": rng.normal(size=(133, 768)).astype(np.float32),
        "bias_y": rng.normal(scale=0.5, size=(133, 768)).astype(np.float32),
    }
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[96, 96], strides=[96, 96]),
        helper.make_node("Reshape", ["pooled", "shape"], ["features"]),  # (batch, 36)
        helper.make_node("MatMul", ["features", "mix"], ["per_keypoint"]),  # (batch, 133)
        helper.make_node("Unsqueeze", ["per_keypoint", "axis"], ["column"]),  # (batch, 133, 1)
        helper.make_node("Mul", ["column", "row_x"], ["scaled_x"]),
        helper.make_node("Add", ["scaled_x", "bias_x"], ["simcc_x"]),
        helper.make_node("Mul", ["column", "row_y"], ["scaled_y"]),
        helper.make_node("Add", ["scaled_y", "bias_y"], ["simcc_y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 384, 288])],
        [
            helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [batch, 133, 576]),
            helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [batch, 133, 768]),
        ],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    return _save(path, graph)


def _anchor(raw: np.ndarray, grid_x: int, grid_y: int, half_size: float, score: float) -> None:
    """A stride-8 person box centred on (8 * grid_x, 8 * grid_y) of +- half_size input pixels."""
    index = grid_y * 80 + grid_x
    raw[index, 2:4] = np.log(2 * half_size / 8)
    raw[index, 4], raw[index, 5] = 1.0, score


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dwpose-onnx")
    raw = np.zeros((NUM_ANCHORS, 85), dtype=np.float32)
    _anchor(raw, 20, 30, half_size=60.0, score=0.8)
    _anchor(raw, 50, 25, half_size=90.0, score=0.95)
    _anchor(raw, 65, 60, half_size=30.0, score=0.4)
    write_detector(root / "persons.onnx", raw)
    write_detector(root / "nobody.onnx", np.zeros((NUM_ANCHORS, 85), dtype=np.float32))
    write_pose_model(root / "pose_static.onnx", batch=1)
    write_pose_model(root / "pose_dynamic.onnx", batch="N")
    return root


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, size=size, dtype=np.uint8) for size in [(480, 640, 3), (300, 200, 3), (64, 96, 3)]]


def _estimator(onnx_dir: Path, detector: str, pose: str) -> WholebodyEstimator:
    return WholebodyEstimator(
        create_session(onnx_dir / detector, "cpu", DETECTOR_SPEC),
        create_session(onnx_dir / pose, "cpu", POSE_MODEL_SPEC),
    )


def _assert_same(left: Pose, right: Pose) -> None:
    for name in ("body", "body_scores", "face", "face_scores", "hands", "hand_scores"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)


def test_estimate_returns_every_detected_person_with_the_pose_record_shapes(
    onnx_dir: Path, images: list[np.ndarray]
) -> None:
    pose = _estimator(onnx_dir, "persons.onnx", "pose_static.onnx").estimate(images[0])
    assert pose.num_persons == 3
    assert pose.body.shape == (3, 18, 2) and pose.body_scores.shape == (3, 18)
    assert pose.face.shape == (3, 68, 2) and pose.face_scores.shape == (3, 68)
    assert pose.hands.shape == (6, 21, 2) and pose.hand_scores.shape == (6, 21)
    assert set(np.unique(pose.body_scores[:, 1])) <= {0.0, 1.0}  # the neck


def test_estimate_matches_the_steps_done_by_hand(onnx_dir: Path, images: list[np.ndarray]) -> None:
    estimator = _estimator(onnx_dir, "persons.onnx", "pose_static.onnx")
    image = images[1]
    session = create_session(onnx_dir / "pose_static.onnx", "cpu")
    boxes = estimator.detector.detect(image)
    assert len(boxes) == 3
    keypoints, scores = [], []
    for box in boxes:
        crop, center, scale = crop_person(image, box, (288, 384))
        simcc_x, simcc_y = session.run(None, {"input": crop[None]})
        locations, point_scores = decode_simcc(simcc_x[0], simcc_y[0])
        keypoints.append(crop_to_image(locations, center, scale, (288, 384)))
        scores.append(point_scores)
    expected = to_pose(np.stack(keypoints), np.stack(scores), image.shape[:2])
    _assert_same(estimator.estimate(image), expected)


def test_estimate_uses_the_whole_image_when_nobody_is_detected(onnx_dir: Path, images: list[np.ndarray]) -> None:
    nobody = _estimator(onnx_dir, "nobody.onnx", "pose_static.onnx")
    image = images[0]
    assert nobody.detector.detect(image).shape == (0, 4)
    pose = nobody.estimate(image)
    assert pose.num_persons == 1
    crop, center, scale = crop_person(image, np.array([0, 0, 640, 480]), (288, 384))
    simcc_x, simcc_y = create_session(onnx_dir / "pose_static.onnx", "cpu").run(None, {"input": crop[None]})
    locations, scores = decode_simcc(simcc_x[0], simcc_y[0])
    expected = to_pose(crop_to_image(locations, center, scale, (288, 384))[None], scores[None], (480, 640))
    _assert_same(pose, expected)


def test_estimate_batch_equals_estimate_per_image(onnx_dir: Path, images: list[np.ndarray]) -> None:
    estimator = _estimator(onnx_dir, "persons.onnx", "pose_static.onnx")
    batch = estimator.estimate_batch(images)
    assert len(batch) == 3
    for image, pose in zip(images, batch, strict=True):
        _assert_same(pose, estimator.estimate(image))
    assert estimator.estimate_batch([]) == []


def test_dynamic_batch_model_runs_all_crops_at_once_with_identical_output(
    onnx_dir: Path, images: list[np.ndarray]
) -> None:
    static = _estimator(onnx_dir, "persons.onnx", "pose_static.onnx")
    dynamic = _estimator(onnx_dir, "persons.onnx", "pose_dynamic.onnx")
    assert static.batch_size == 1 and dynamic.batch_size > 1
    for left, right in zip(static.estimate_batch(images), dynamic.estimate_batch(images), strict=True):
        _assert_same(left, right)


def test_create_session_is_created_once_per_file_and_device(onnx_dir: Path) -> None:
    first = create_session(onnx_dir / "pose_static.onnx", "cpu")
    again = create_session(onnx_dir / "subdir" / ".." / "pose_static.onnx", "cpu", POSE_MODEL_SPEC)
    assert first is again
    assert first.get_providers() == ["CPUExecutionProvider"]


def test_create_session_auto_asks_for_cuda_only_with_a_gpu(onnx_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    caplog.set_level(logging.INFO, logger="core.pose.onnx_session")
    shutil.copy(onnx_dir / "nobody.onnx", onnx_dir / "auto.onnx")
    session = create_session(onnx_dir / "auto.onnx", "auto", DETECTOR_SPEC)
    if torch.cuda.is_available():
        assert "CUDAExecutionProvider" in session.get_providers()
    else:
        assert session.get_providers() == ["CPUExecutionProvider"]
    assert "auto.onnx: onnxruntime providers" in caplog.text


def test_create_session_wraps_a_corrupt_file_in_model_files_error(tmp_path: Path) -> None:
    path = tmp_path / "dw-ll_ucoco_384.onnx"
    path.write_bytes(b"not an onnx model at all")
    with pytest.raises(ModelFilesError, match=r"cannot load .*dw-ll_ucoco_384\.onnx.*simcc_x \(1 x 133 x 576\)"):
        create_session(path, "cpu", POSE_MODEL_SPEC)
    with pytest.raises(ModelFilesError, match=r"missing .*absent\.onnx"):
        create_session(tmp_path / "absent.onnx", "cpu", DETECTOR_SPEC)


def test_create_session_refuses_a_file_with_the_wrong_signature(onnx_dir: Path) -> None:
    # The pose model where the detector belongs: loads fine, but its input is 384 x 288, its outputs two.
    with pytest.raises(ModelFilesError, match=r"malformed .*pose_static\.onnx.*YOLOX-L.*images \(1 x 3"):
        create_session(onnx_dir / "pose_static.onnx", "cpu", DETECTOR_SPEC)
    with pytest.raises(ModelFilesError, match=r"malformed .*persons\.onnx.*DWPose whole-body"):
        create_session(onnx_dir / "persons.onnx", "cpu", POSE_MODEL_SPEC)


def test_from_model_files_runs_on_the_tiny_model(tiny_model_dir: Path) -> None:
    estimator = WholebodyEstimator.from_model_files(resolve_model_files(tiny_model_dir), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, size=(120, 90, 3), dtype=np.uint8)
    pose = estimator.estimate(image)
    assert pose.num_persons >= 1
    assert pose.body.shape == (pose.num_persons, 18, 2) and pose.hands.shape == (2 * pose.num_persons, 21, 2)
    assert np.isfinite(pose.body).all() and np.isfinite(pose.body_scores).all()


def test_from_model_files_reports_a_corrupt_pose_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / POSE_MODEL_FILE).write_bytes(b"\x00corrupt")
    with pytest.raises(ModelFilesError, match=r"dw-ll_ucoco_384\.onnx"):
        WholebodyEstimator.from_model_files(resolve_model_files(broken), device="cpu")
    assert (broken / DETECTOR_FILE).is_file()
