import json

import pytest
from pydantic import ValidationError

from core.contract.params import JobParams


def test_job_params_defaults_follow_the_original_config() -> None:
    params = JobParams()
    assert (params.resolution, params.tile_size, params.tile_overlap) == (576, 72, 6)
    assert (params.num_inference_steps, params.guidance_scale, params.noise_aug_strength) == (25, 2.0, 0.0)
    assert (params.sample_stride, params.fps, params.seed) == (2, 15, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resolution", 500),  # not a multiple of 64
        ("resolution", 64),
        ("tile_size", 1),
        ("tile_overlap", 0),  # the original skips a frame per tile at overlap 0
        ("num_inference_steps", 0),
        ("guidance_scale", -0.5),
        ("noise_aug_strength", 1.5),
        ("sample_stride", 0),
        ("fps", 0),
        ("seed", -1),
        ("seed", 2**63),
    ],
)
def test_job_params_rejects_out_of_range_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        JobParams(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


def test_job_params_rejects_overlap_not_below_tile_size() -> None:
    with pytest.raises(ValidationError) as info:
        JobParams(tile_size=16, tile_overlap=16)
    error = info.value.errors()[0]
    assert error["loc"] == ("tile_overlap",)
    assert "smaller than tile_size (16)" in error["msg"]


def test_job_params_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="frames_overlap"):
        JobParams(frames_overlap=6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resolution", "128"),
        ("resolution", 576.0),  # the spec says integer
        ("tile_size", True),  # a bool is an int to Python: it would be stored as 1
        ("tile_overlap", True),
        ("num_inference_steps", "25"),
        ("guidance_scale", True),
        ("guidance_scale", "2.5"),
        ("noise_aug_strength", False),
        ("sample_stride", "2"),
        ("fps", True),
        ("seed", "42"),
    ],
)
def test_job_params_numbers_are_strict_refusing_strings_and_booleans(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        JobParams.model_validate({field: value})
    assert info.value.errors()[0]["loc"] == (field,)
    with pytest.raises(ValidationError):
        JobParams.model_validate_json(f'{{"{field}": {json.dumps(value)}}}')


def test_job_params_float_fields_take_integers() -> None:
    params = JobParams.model_validate_json('{"guidance_scale": 3, "noise_aug_strength": 0}')
    assert (params.guidance_scale, params.noise_aug_strength) == (3.0, 0.0)
