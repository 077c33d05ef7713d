"""Wan-Animate generation on the tiny model (CPU, float32): the same frames as diffusers' pipeline called
directly, one frame per driving frame across segments, and progress and cancel through on_step."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.backends.wan_animate.files import resolve_wan_files
from core.backends.wan_animate.inputs import WanInputs
from core.backends.wan_animate.pipeline import WanAnimator, generate_wan, load_wan_animator, num_segments, to_uint8
from core.backends.wan_animate.tiny import make_tiny_wan_model
from core.contract.params import WanAnimateParams
from core.errors import JobCanceledError

SIZE = 32  # a test-only size: at the 480p area one 17-frame segment takes over a minute on CPU


@pytest.fixture(scope="module")
def animator(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: None) -> WanAnimator:
    directory = make_tiny_wan_model(tmp_path_factory.mktemp("wan") / "tiny")
    return load_wan_animator(resolve_wan_files(directory), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def monkeypatch_module() -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield None


def _inputs(num_frames: int, seed: int = 0) -> WanInputs:
    rng = np.random.default_rng(seed)
    return WanInputs(
        reference_image=rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
        pose_frames=rng.integers(0, 256, (num_frames, SIZE, SIZE, 3), dtype=np.uint8),
        face_frames=rng.integers(0, 256, (num_frames, 512, 512, 3), dtype=np.uint8),
        driving_poses=[],
    )


def test_generate_wan_equals_the_pipeline_called_directly(animator: WanAnimator) -> None:
    inputs, params = _inputs(7), WanAnimateParams(segment_frame_length=5, num_inference_steps=2, seed=3)
    frames = generate_wan(animator, inputs, params)
    direct = animator.pipeline(
        image=Image.fromarray(inputs.reference_image),
        pose_video=[Image.fromarray(frame) for frame in inputs.pose_frames],
        face_video=[Image.fromarray(frame) for frame in inputs.face_frames],
        prompt=params.prompt, height=SIZE, width=SIZE, segment_frame_length=5, num_inference_steps=2,
        prev_segment_conditioning_frames=1, guidance_scale=1.0,
        generator=torch.Generator("cpu").manual_seed(3), output_type="pil",
    ).frames[0]  # fmt: skip
    assert frames.shape == (7, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, np.stack([np.asarray(image) for image in direct]))  # numpy_to_pil's rounding
    assert frames.std() > 0


@pytest.mark.parametrize("prev", [1, 5])
def test_generate_wan_gives_one_frame_per_driving_frame_over_several_segments(animator: WanAnimator, prev: int) -> None:
    # diffusers 0.42 fails P=5 at L=9 (a latent-frame mismatch in the carried frames); L=13 works.
    params = WanAnimateParams(
        segment_frame_length=13, prev_segment_conditioning_frames=prev, num_inference_steps=1, seed=0
    )
    num_frames = 20  # P + k (L - P) >= 20: k = 2 for both (12 new frames per segment at P=1, 8 at P=5)
    steps: list[tuple[int, int]] = []
    frames = generate_wan(
        animator, _inputs(num_frames), params, on_step=lambda step, total: steps.append((step, total))
    )
    assert frames.shape[0] == num_frames
    total = num_segments(num_frames, 13, prev)
    assert total == {1: 2, 5: 2}[prev]
    assert steps == [(step, total) for step in range(1, total + 1)]


def test_on_step_sees_every_step_of_every_segment_in_order(animator: WanAnimator) -> None:
    steps: list[tuple[int, int]] = []
    params = WanAnimateParams(segment_frame_length=5, num_inference_steps=3, seed=1)
    generate_wan(animator, _inputs(9), params, on_step=lambda step, total: steps.append((step, total)))
    assert steps == [(step, 6) for step in range(1, 7)]  # 2 segments x 3 steps


def test_an_exception_from_on_step_stops_generation(animator: WanAnimator) -> None:
    steps: list[int] = []

    def cancel_at_two(step: int, total: int) -> None:
        steps.append(step)
        if step == 2:
            raise JobCanceledError("canceled")

    params = WanAnimateParams(segment_frame_length=5, num_inference_steps=3, seed=1)
    with pytest.raises(JobCanceledError):
        generate_wan(animator, _inputs(9), params, on_step=cancel_at_two)
    assert steps == [1, 2]


def test_a_single_driving_frame_gives_a_single_frame(animator: WanAnimator) -> None:
    params = WanAnimateParams(segment_frame_length=5, num_inference_steps=1, seed=0)
    assert generate_wan(animator, _inputs(1), params).shape == (1, SIZE, SIZE, 3)


def test_to_uint8_rounds_half_to_even_as_numpy_to_pil() -> None:
    values = np.array([0.0, 0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0], dtype=np.float64)
    assert to_uint8(values).tolist() == [0, 0, 2, 254, 255]


def test_the_tiny_directory_resolves_and_names_the_published_classes(animator: WanAnimator) -> None:
    root = Path(animator.pipeline.config._name_or_path)
    index = (root / "model_index.json").read_text()
    for name in (
        "CLIPVisionModel",
        "CLIPImageProcessor",
        "UMT5EncoderModel",
        "T5TokenizerFast",
        "UniPCMultistepScheduler",
    ):
        assert name in index
    assert resolve_wan_files(root).is_tiny


def test_prepare_wan_inputs_with_tiny_dwpose_gives_the_pipeline_its_inputs(animator: WanAnimator) -> None:
    from core.backends.wan_animate.inputs import prepare_wan_inputs
    from tests.support import media

    frames = media.moving_person_frames(3)  # (3, 144, 176, 3)
    params = WanAnimateParams(resolution="480p", seed=0)
    inputs = prepare_wan_inputs(frames[0], frames, params, animator.estimator)
    # sqrt(399360 * 144 / 176) = 571.6 -> 560; 399360 / 571.6 = 698.6 -> 688
    assert inputs.reference_image.shape == (560, 688, 3)
    assert inputs.pose_frames.shape == (3, 560, 688, 3) and inputs.pose_frames.any()
    assert inputs.face_frames.shape == (3, 512, 512, 3)
    assert len(inputs.driving_poses) == 3 and set(inputs.timings) == {"pose"}
    again = prepare_wan_inputs(frames[0], frames, params, animator.estimator, driving_poses=inputs.driving_poses)
    assert np.array_equal(again.pose_frames, inputs.pose_frames)
