"""The tiny model directory: layout, byte determinism, non-zero weights, and the behaviour of its ONNX files."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from core.models.files import resolve_model_files
from core.models.tiny import keypoint_scores, make_tiny_model, wholebody_template
from core.pose.detector import PersonDetector
from core.pose.keypoints import crop_person, decode_simcc
from core.pose.wholebody import WholebodyEstimator
from tests.support.media import flat_image, moving_person_frames, person_image

# OpenPose-18 ids the pose alignment fits on (reference §7): all must be seen on a textured person.
REFERENCE_IDS = (0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)
# COCO-WholeBody ranges
BODY, FACE, LEFT_HAND, RIGHT_HAND = slice(0, 17), slice(23, 91), slice(91, 112), slice(112, 133)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def detector(tiny_model_dir: Path) -> PersonDetector:
    return PersonDetector(_session(resolve_model_files(tiny_model_dir).detector))


@pytest.fixture(scope="module")
def pose_session(tiny_model_dir: Path) -> ort.InferenceSession:
    return _session(resolve_model_files(tiny_model_dir).pose_model)


@pytest.fixture(scope="module")
def estimator(tiny_model_dir: Path) -> WholebodyEstimator:
    files = resolve_model_files(tiny_model_dir)
    return WholebodyEstimator(_session(files.detector), _session(files.pose_model))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------
# layout and bytes


def test_make_tiny_model_writes_the_release_layout(tiny_model_dir: Path) -> None:
    files = resolve_model_files(tiny_model_dir)
    assert files.vae_variant is None and files.image_encoder_variant is None
    assert sorted(_hashes(tiny_model_dir)) == [
        "DWPose/dw-ll_ucoco_384.onnx",
        "DWPose/yolox_l.onnx",
        "MimicMotion_1-1.pth",
        "svd/feature_extractor/preprocessor_config.json",
        "svd/image_encoder/config.json",
        "svd/image_encoder/model.safetensors",
        "svd/model_index.json",
        "svd/scheduler/scheduler_config.json",
        "svd/unet/config.json",  # config only: the UNet weights live in the .pth (reference §2)
        "svd/vae/config.json",
        "svd/vae/diffusion_pytorch_model.safetensors",
        "tiny-model.json",  # the marker that lets services warn about random weights
    ]
    assert files.is_tiny
    total_bytes = sum(path.stat().st_size for path in tiny_model_dir.rglob("*") if path.is_file())
    assert total_bytes < 10_000_000


def test_make_tiny_model_is_byte_deterministic(tiny_model_dir: Path, tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "again")
    assert _hashes(tmp_path / "again") == _hashes(tiny_model_dir)


def test_make_tiny_model_seed_changes_the_weights_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "other", seed=1)
    reference, other = _hashes(tiny_model_dir), _hashes(tmp_path / "other")
    changed = {name for name in reference if reference[name] != other[name]}
    assert changed == {
        "MimicMotion_1-1.pth",
        "svd/image_encoder/model.safetensors",
        "svd/vae/diffusion_pytorch_model.safetensors",
        "tiny-model.json",  # records the seed
    }


def test_make_tiny_model_leaves_the_global_torch_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_tiny_model(tmp_path / "model")
    assert torch.equal(torch.rand(3), expected)


def _weight_files(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        "checkpoint": torch.load(root / "MimicMotion_1-1.pth", map_location="cpu", weights_only=True),
        "vae": load_file(root / "svd/vae/diffusion_pytorch_model.safetensors"),
        "image_encoder": load_file(root / "svd/image_encoder/model.safetensors"),
    }


def test_every_stored_tensor_is_non_zero(tiny_model_dir: Path) -> None:
    for component, state in _weight_files(tiny_model_dir).items():
        assert state, component
        for name, tensor in state.items():
            assert tensor.is_floating_point(), f"{component}: {name} is {tensor.dtype}"
            assert torch.isfinite(tensor).all(), f"{component}: {name}"
            zero_fraction = (tensor == 0).float().mean().item()
            assert zero_fraction < 1e-3, f"{component}: {name} is {zero_fraction:.1%} zeros"


def test_zero_initialised_tensors_are_refilled_with_small_values(tiny_model_dir: Path) -> None:
    state = _weight_files(tiny_model_dir)
    checkpoint, vae = state["checkpoint"], state["vae"]
    # PoseNet's final projection starts at zero in the original (reference §3); here it is small but live.
    final_proj = checkpoint["pose_net.final_proj.weight"]
    assert final_proj.shape == (32, 128, 1, 1)
    assert 0.005 < final_proj.std().item() < 0.05
    assert checkpoint["pose_net.scale"].item() == 2.0
    # AlphaBlender mixes: sigmoid(mix) strictly between the two branches, and not all alike.
    mixes = torch.cat([tensor for name, tensor in vae.items() if name.endswith("mix_factor")])
    assert len(mixes) == 9
    assert (mixes.abs() >= 0.5).all() and (mixes.abs() <= 1.5).all()
    assert len(set(mixes.tolist())) == len(mixes)


def test_checkpoint_holds_only_unet_and_pose_net_keys(tiny_model_dir: Path) -> None:
    checkpoint = _weight_files(tiny_model_dir)["checkpoint"]
    prefixes = {name.split(".", 1)[0] for name in checkpoint}
    assert prefixes == {"unet", "pose_net"}
    assert sum(name.startswith("pose_net.") for name in checkpoint) == 19  # 9 convs x (weight, bias) + scale


# ---------------------------------------------------------------------------------------------------------
# ONNX signatures


@pytest.mark.parametrize(
    ("relative", "inputs", "outputs"),
    [
        ("DWPose/yolox_l.onnx", {"images": [1, 3, 640, 640]}, {"output": [1, 8400, 85]}),
        (
            "DWPose/dw-ll_ucoco_384.onnx",
            {"input": [1, 3, 384, 288]},
            {"simcc_x": [1, 133, 576], "simcc_y": [1, 133, 768]},
        ),
    ],
)
def test_onnx_files_have_the_real_signatures(
    tiny_model_dir: Path, relative: str, inputs: dict[str, list[int]], outputs: dict[str, list[int]]
) -> None:
    model = onnx.load(tiny_model_dir / relative)
    onnx.checker.check_model(model, full_check=True)

    def signature(values: list[onnx.ValueInfoProto]) -> dict[str, list[int]]:
        for value in values:
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, value.name
        return {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim] for value in values}

    assert signature(list(model.graph.input)) == inputs
    assert signature(list(model.graph.output)) == outputs
    session = _session(tiny_model_dir / relative)
    feed = {name: np.random.default_rng(0).normal(size=shape).astype(np.float32) for name, shape in inputs.items()}
    results = session.run(None, feed)
    assert [list(result.shape) for result in results] == list(outputs.values())
    assert all(result.dtype == np.float32 and np.isfinite(result).all() for result in results)


def test_detector_output_depends_on_the_image(detector: PersonDetector) -> None:
    from core.pose.detector import letterbox

    def raw(image: np.ndarray) -> np.ndarray:
        return detector.session.run(None, {"images": letterbox(image)[0]})[0]

    assert not np.array_equal(raw(person_image(128, 96, seed=0)), raw(person_image(128, 96, seed=1)))


def test_pose_model_output_depends_on_the_image(pose_session: ort.InferenceSession) -> None:
    def run(image: np.ndarray) -> list[np.ndarray]:
        crop, _, _ = crop_person(image, np.array([0, 0, image.shape[1], image.shape[0]]), (288, 384))
        return pose_session.run(None, {"input": crop[None]})

    first, second = run(_noise(96, 72, seed=0)), run(_noise(96, 72, seed=1))
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(first[1], second[1])


# ---------------------------------------------------------------------------------------------------------
# detector behaviour: exactly one person on textured images, none on flat ones


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("portrait 1024x576 noise", _noise(1024, 576)),
        ("landscape 240x320 noise", _noise(240, 320)),
        ("synthetic person", person_image(256, 192)),
        ("synthetic person, landscape", person_image(144, 256)),
        ("tiny synthetic person", person_image(48, 36)),
    ],
)
def test_detector_finds_exactly_one_person_on_textured_images(
    detector: PersonDetector, name: str, image: np.ndarray
) -> None:
    boxes = detector.detect(image)
    assert boxes.shape == (1, 4), name
    x1, y1, x2, y2 = boxes[0]
    height, width = image.shape[:2]
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    assert 0 < centre_x < width and 0 < centre_y < height, name
    assert x2 - x1 > 0.2 * width and y2 - y1 > 0.2 * height, name


@pytest.mark.parametrize("value", [0, 114, 200])
@pytest.mark.parametrize("size", [(1024, 576), (120, 200), (32, 48)])
def test_detector_finds_nobody_on_a_flat_image(detector: PersonDetector, value: int, size: tuple[int, int]) -> None:
    assert detector.detect(flat_image(*size, value=value)).shape == (0, 4)


def test_detector_box_follows_the_figure(detector: PersonDetector) -> None:
    frames = moving_person_frames(3, height=144, width=176)  # the figure walks from 30 % to 70 % of the width
    centres = [detector.detect(frame)[0, [0, 2]].mean() for frame in frames]
    assert centres[0] < centres[1] < centres[2]
    assert centres[2] - centres[0] > 0.25 * 176


@settings(max_examples=15, deadline=None)
@given(
    height=st.integers(40, 700),
    width=st.integers(40, 700),
    patch=st.tuples(st.floats(0, 0.7), st.floats(0, 0.7), st.floats(0.2, 0.3), st.floats(0.2, 0.3)),
    seed=st.integers(0, 2**16),
)
def test_detector_puts_the_one_person_on_the_textured_patch(
    detector: PersonDetector,
    height: int,
    width: int,
    patch: tuple[float, float, float, float],
    seed: int,
) -> None:
    # A noise patch on a flat background, anywhere in an image of any aspect.
    left, top = int(patch[0] * width), int(patch[1] * height)
    right, bottom = left + max(4, int(patch[2] * width)), top + max(4, int(patch[3] * height))
    image = flat_image(height, width, value=90)
    image[top:bottom, left:right] = _noise(bottom - top, right - left, seed)
    boxes = detector.detect(image)
    assert boxes.shape == (1, 4)
    # The box centre lies on the patch, up to one stride-32 cell of the 640 canvas.
    cell = 32 / min(640 / height, 640 / width)
    centre_x, centre_y = boxes[0, [0, 2]].mean(), boxes[0, [1, 3]].mean()
    assert left - cell <= centre_x <= right + cell
    assert top - cell <= centre_y <= bottom + cell


# ---------------------------------------------------------------------------------------------------------
# pose model behaviour


def test_template_is_a_plausible_upright_person_inside_the_crop() -> None:
    template = wholebody_template()
    assert template.shape == (133, 2) and template.dtype == np.float32
    assert (template[:, 0] > 0).all() and (template[:, 0] < 288).all()
    assert (template[:, 1] > 0).all() and (template[:, 1] < 384).all()
    nose, left_shoulder, right_shoulder, left_hip, left_ankle = template[[0, 5, 6, 11, 15]]
    assert nose[1] < left_shoulder[1] < left_hip[1] < left_ankle[1]  # head on top, feet at the bottom
    assert left_shoulder[0] > nose[0] > right_shoulder[0]  # facing the camera
    face_centre = template[FACE].mean(axis=0)
    assert np.linalg.norm(face_centre - nose) < 15
    for hand, wrist in ((LEFT_HAND, 9), (RIGHT_HAND, 10)):
        assert np.array_equal(template[hand][0], template[wrist])
        assert np.abs(template[hand] - template[wrist]).max() < 40


def test_keypoint_scores_spread_across_the_thresholds() -> None:
    scores = keypoint_scores()
    body = scores[BODY]
    assert (body < 0.3).sum() == 2 and (body > 0.3).sum() == 15  # the left elbow and the right wrist
    assert scores[FACE].min() >= 0.2 and scores[FACE].max() <= 0.9
    for hand in (LEFT_HAND, RIGHT_HAND):
        assert scores[hand].min() == pytest.approx(0.05) and scores[hand].max() == pytest.approx(1.0)
        assert (scores[hand] < 0.3).any() and (scores[hand] > 0.3).any()


@pytest.mark.parametrize("image", [person_image(256, 192), _noise(160, 120), person_image(144, 256, seed=3)])
def test_estimator_sees_every_reference_keypoint_on_a_textured_person(
    estimator: WholebodyEstimator, image: np.ndarray
) -> None:
    pose = estimator.estimate(image)
    assert pose.num_persons == 1
    visible = pose.body_visible[0]
    assert visible[list(REFERENCE_IDS)].all()  # neck included: both shoulders above 0.3
    assert not visible.all()  # an elbow and a wrist stay below 0.3
    for hand_scores in pose.hand_scores:
        assert (hand_scores < 0.3).any() and (hand_scores > 0.3).any()
    assert (pose.face_scores > 0.15).all() and (pose.face_scores < 0.95).all()
    # keypoints land inside the frame
    assert (pose.body[0] > 0).all() and (pose.body[0] < 1).all()


def test_estimator_keypoints_follow_the_figure(estimator: WholebodyEstimator) -> None:
    frames = moving_person_frames(3, height=144, width=176)
    noses = [estimator.estimate(frame).body[0, 0, 0] for frame in frames]
    assert noses[0] < noses[1] < noses[2]


@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_crops_score_below_threshold(pose_session: ort.InferenceSession, value: int) -> None:
    # Straight into the model (a normalised crop of one colour) and through the whole estimator
    # (the crop then has a black border around the image).
    normalised = ((value - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])).astype(np.float32)
    crop = np.broadcast_to(normalised[None, :, None, None], (1, 3, 384, 288)).copy()
    _, scores = decode_simcc(*pose_session.run(None, {"input": crop}))
    assert scores.max() < 0.3


def test_estimator_finds_no_visible_body_point_on_a_flat_image(estimator: WholebodyEstimator) -> None:
    for image in (flat_image(1024, 576, value=200), flat_image(48, 64, value=30)):
        pose = estimator.estimate(image)
        assert pose.num_persons == 1  # the original's whole-frame fallback
        assert not pose.body_visible.any()
        assert pose.hand_scores.max() < 0.3 and pose.face_scores.max() < 0.3
