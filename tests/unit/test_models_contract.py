"""Models in the contract: names, each model's params, its queue, the settings that pick them, the CLI flags."""

import argparse
import os

import pytest
from pydantic import ValidationError

from cli.params import add_job_param_flags, add_model_flag, job_params_from_args
from core.contract.params import (
    DEFAULT_MODEL,
    MIMICMOTION,
    PARAMS_BY_MODEL,
    WAN_ANIMATE,
    JobParams,
    WanAnimateParams,
    with_seed,
)  # fmt: skip
from core.contract.queues import GPU_QUEUE, job_queue, model_queue, parse_queue_routes
from core.contract.records import Job
from core.settings import Settings
from service.errors import allowed_range
from service.schemas import JobCreate

URLS = {"image_url": "https://example.com/person.png", "video_url": "https://example.com/dance.mp4"}


def test_wan_params_take_the_pipelines_names_and_refuse_what_it_cannot_run() -> None:
    params = WanAnimateParams()
    assert (params.resolution, params.segment_frame_length, params.num_inference_steps, params.fps) == (
        "720p", 77, 20, 30,
    )  # fmt: skip
    assert params.prev_segment_conditioning_frames == 1 and params.guidance_scale == 1.0
    for bad in ({"segment_frame_length": 78}, {"prev_segment_conditioning_frames": 2},
                {"prev_segment_conditioning_frames": True}, {"mode": "replace"}, {"resolution": 576},
                {"retarget": 1}, {"tile_size": 8}):  # fmt: skip
        with pytest.raises(ValidationError):
            WanAnimateParams.model_validate(bad)
    assert with_seed(WanAnimateParams()).seed is not None and isinstance(with_seed(params), WanAnimateParams)


def test_each_model_has_its_queue_and_only_mimicmotion_follows_resolution_routes() -> None:
    routes = parse_queue_routes("0=gpu,768=gpu-80g")
    assert model_queue(MIMICMOTION) == GPU_QUEUE and model_queue(WAN_ANIMATE) == "wan2.2-animate"
    assert job_queue(MIMICMOTION, JobParams(resolution=1024), routes) == "gpu-80g"
    assert job_queue(MIMICMOTION, JobParams(resolution=576), routes) == "gpu"
    assert job_queue(WAN_ANIMATE, WanAnimateParams(resolution="720p"), routes) == "wan2.2-animate"
    with pytest.raises(ValueError, match="queue route"):  # a model's own queue is no GPU class of MimicMotion's
        parse_queue_routes("768=wan2.2-animate")


def test_a_stored_job_keeps_its_models_params_and_an_old_record_is_mimicmotions() -> None:
    wan = Job(id="a", owner="o", image_url="x", video_url="y", model=WAN_ANIMATE, params={"seed": 1, "fps": 12})
    assert isinstance(wan.params, WanAnimateParams)  # not JobParams, which also has seed and fps
    again = Job.model_validate_json(wan.model_dump_json())
    assert isinstance(again.params, WanAnimateParams) and again.params.fps == 12
    old = Job.model_validate({"id": "b", "owner": "o", "image_url": "x", "video_url": "y", "params": {"seed": 2}})
    assert (old.model, type(old.params)) == (DEFAULT_MODEL, JobParams)


def test_job_create_checks_params_against_the_named_model() -> None:
    assert JobCreate.model_validate(URLS).model == DEFAULT_MODEL
    body = JobCreate.model_validate({**URLS, "model": WAN_ANIMATE, "params": {"prompt": "a dance", "fps": 24}})
    assert isinstance(body.params, WanAnimateParams) and body.params.prompt == "a dance"
    with pytest.raises(ValidationError) as refused:
        JobCreate.model_validate({**URLS, "model": WAN_ANIMATE, "params": {"tile_size": 8}})
    assert refused.value.errors()[0]["loc"] == ("params", "tile_size")
    with pytest.raises(ValidationError) as refused:
        JobCreate.model_validate({**URLS, "params": {"prompt": "a dance"}})  # MimicMotion has no prompt
    assert refused.value.errors()[0]["loc"] == ("params", "prompt")
    with pytest.raises(ValidationError):
        JobCreate.model_validate({**URLS, "model": "sora"})


def test_the_allowed_range_in_a_422_is_the_named_models() -> None:
    loc = ("body", "params", "num_inference_steps")
    assert allowed_range(loc, MIMICMOTION) == "1 to 100"
    assert allowed_range(("body", "params", "segment_frame_length"), WAN_ANIMATE) == "5 to 161"
    assert allowed_range(("body", "params", "segment_frame_length"), MIMICMOTION) is None
    assert allowed_range(("body", "params", "resolution"), WAN_ANIMATE) is None  # "480p" | "720p", not a range


def test_a_worker_of_a_model_consumes_its_queue_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith("MIMICMOTION_")]:
        monkeypatch.delenv(name)
    assert Settings().worker_queues == [GPU_QUEUE] and Settings().models == [DEFAULT_MODEL]
    assert Settings(worker_model=WAN_ANIMATE).worker_queues == ["wan2.2-animate"]
    assert Settings(worker_model=WAN_ANIMATE, worker_queues="wan-80g").worker_queues == ["wan-80g"]
    monkeypatch.setenv("MIMICMOTION_MODELS", " mimicmotion-1.1, wan2.2-animate ,")
    assert Settings().models == [MIMICMOTION, WAN_ANIMATE]
    monkeypatch.setenv("MIMICMOTION_MODELS", "mimicmotion-1.1,sora")
    with pytest.raises(ValidationError, match="models"):
        Settings()


def _flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_flag(parser)
    add_job_param_flags(parser)
    return parser.parse_args(argv)


def test_cli_flags_are_read_as_the_chosen_models_fields() -> None:
    wan = job_params_from_args(_flags("--model", WAN_ANIMATE, "--resolution", "480p", "--fps", "12", "--retarget"))
    assert wan == WanAnimateParams(resolution="480p", fps=12, retarget=True)
    mm = job_params_from_args(_flags("--resolution", "576", "--guidance-scale", "1.5"))
    assert mm == JobParams(resolution=576, guidance_scale=1.5)
    with pytest.raises(SystemExit, match=r"--resolution: .*model mimicmotion-1\.1"):
        job_params_from_args(_flags("--resolution", "480p"))
    with pytest.raises(SystemExit, match=r"--prompt: not a parameter of mimicmotion-1\.1"):
        job_params_from_args(_flags("--prompt", "dance"))
    assert set(PARAMS_BY_MODEL) == {MIMICMOTION, WAN_ANIMATE}
