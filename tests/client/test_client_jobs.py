"""The Python client against the real stack (gateway under uvicorn, a worker on the tiny model): jobs from
URLs, progress from the event stream, paging, cancel, typed errors, downloads; sync and async alike."""

import asyncio
import hashlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mimicmotion_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InvalidRequestError,
    Job,
    JobFailedError,
    MimicMotionError,
    ModelInfo,
    NotFoundError,
    WaitTimeoutError,
)

from core.video.decode import read_video_frames
from tests.support.client_stack import QUICK, SERVED_MODELS, SLOW, ClientStack
from tests.support.media import moving_person_frames, person_image, write_image, write_video

pytestmark = pytest.mark.e2e


def urls(stack: ClientStack) -> tuple[str, str]:
    return f"{stack.inputs_url}/person.png", f"{stack.inputs_url}/drive.mp4"


def test_run_follows_the_stream_to_success_and_downloads_the_checked_video(
    client_stack: ClientStack, tmp_path: Path
) -> None:
    seen: list[Job] = []
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        params = {**QUICK, "num_inference_steps": 24, "seed": 5}  # steps enough for the stream's 0.5 s polls
        job = client.run(*urls(client_stack), params, on_progress=seen.append, timeout=120)
        video = client.download(job.id, tmp_path / "out" / "result.mp4")
        poses = client.download(job, tmp_path / "poses.mp4", what="pose_video")

    assert job.status == "succeeded" and job.params["seed"] == 5 and job.output is not None
    # The callback saw the job through the stream: running, denoising steps k/24 on the way, then success.
    assert seen[-1].status == "succeeded" and seen[-1].id == job.id
    progress = [j.progress for j in seen if j.progress is not None]
    denoising = [(p.step, p.total_steps) for p in progress if p.stage == "denoising"]
    assert any(step > 0 for step, _ in denoising) and {total for _, total in denoising} == {24}
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions), [(j.status, j.progress) for j in seen]
    assert video.read_bytes()[4:8] == b"ftyp"
    assert hashlib.sha256(video.read_bytes()).hexdigest() == job.output.sha256
    assert read_video_frames(video, sample_stride=1).frames.shape[0] == job.output.num_frames
    assert read_video_frames(poses, sample_stride=1).frames.shape[0] == job.output.num_frames
    assert not list(tmp_path.rglob("*.part"))


WAN = "wan2.2-animate"


def test_models_lists_what_the_gateway_serves_and_submit_sends_the_chosen_model(client_stack: ClientStack) -> None:
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        models = client.models()
        wan = client.submit(*urls(client_stack), {"segment_frame_length": 81, "seed": 3}, model=WAN)
        stored = client.get(wan.id)
        default = client.submit(*urls(client_stack), {**SLOW, "seed": 4})
        with pytest.raises(InvalidRequestError) as refused:  # run passes model on: MimicMotion's params, Wan's model
            client.run(*urls(client_stack), QUICK, model=WAN, timeout=60)
        for job in (wan, default):
            client.cancel(job.id)

    assert all(isinstance(model, ModelInfo) for model in models)
    assert [model.name for model in models] == SERVED_MODELS
    assert [model.default for model in models] == [True, False]
    assert [model.live_workers for model in models] == [1, 0]  # the stack's worker serves MimicMotion only
    assert [model.queue for model in models] == ["gpu", WAN]
    assert models[1].params_schema["properties"]["segment_frame_length"]["default"] == 77
    assert "tile_size" in models[0].params_schema["properties"]
    assert models[1].title == models[1].raw["title"] and "Apache-2.0" in models[1].license and models[1].summary
    assert (wan.model, wan.status, wan.params["segment_frame_length"]) == (WAN, "queued", 81)
    assert stored.model == WAN and stored.params["prompt"] == models[1].params_schema["properties"]["prompt"]["default"]
    assert default.model == "mimicmotion-1.1"
    assert refused.value.status == 422 and "tile_size" in refused.value.message and WAN in refused.value.message


def test_list_iterates_every_page_newest_first_and_cancel_is_idempotent(client_stack: ClientStack) -> None:
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        jobs = [client.submit(*urls(client_stack), {**SLOW, "seed": seed}) for seed in range(3)]
        canceled = [client.cancel(job.id) for job in jobs]
        again = client.cancel(jobs[0].id)  # a second cancel (a retry whose answer was lost) is not an error
        listed = list(client.list(limit=2))

    assert [job.status for job in canceled] == ["canceled"] * 3 and again.status == "canceled"
    assert [job.id for job in listed] == [job.id for job in reversed(jobs)]


def test_errors_carry_status_code_and_message(client_stack: ClientStack) -> None:
    key = client_stack.fresh_key()
    with Client(client_stack.base_url, key) as client:
        with pytest.raises(NotFoundError) as missing:
            client.get("no-such-job")
        with pytest.raises(InvalidRequestError) as invalid:
            client.submit(*urls(client_stack), {"tile_size": 8, "tile_overlap": 8})
        with pytest.raises(MimicMotionError, match="neither") as not_a_file:
            client.submit("no/such/person.png", urls(client_stack)[1])
        job = client.run(*urls(client_stack), QUICK, timeout=120)
        with pytest.raises(ConflictError) as finished:
            client.cancel(job.id)
    with Client(client_stack.base_url, "not-a-key") as stranger, pytest.raises(AuthenticationError) as refused:
        stranger.get(job.id)

    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert invalid.value.status == 422 and "tile_overlap" in invalid.value.message
    assert not_a_file.value.status is None and not_a_file.value.code == "invalid_input"
    assert finished.value.status == 409 and "succeeded" in finished.value.message
    assert refused.value.status == 401


def test_run_raises_job_failed_with_the_jobs_error(client_stack: ClientStack) -> None:
    with Client(client_stack.base_url, client_stack.fresh_key()) as client, pytest.raises(JobFailedError) as failed:
        client.run(urls(client_stack)[0], f"{client_stack.inputs_url}/garbage.mp4", QUICK, timeout=120)
    assert failed.value.job.status == "failed"
    assert failed.value.code == failed.value.job.error.code == "input_not_video"


def test_wait_gives_up_at_its_timeout_while_the_job_keeps_running(client_stack: ClientStack) -> None:
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        job = client.submit(*urls(client_stack), SLOW)
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError):
            client.wait(job.id, timeout=1.5)
        waited = time.monotonic() - started
        assert client.get(job.id).status in ("queued", "running")
        client.cancel(job.id)
    assert 1.5 <= waited < 10


def test_a_download_that_does_not_match_the_jobs_checksum_is_refused(client_stack: ClientStack, tmp_path: Path) -> None:
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        job = client.run(*urls(client_stack), QUICK, timeout=120)
        assert job.output is not None
        key = urlsplit(job.output.video_url).path.removeprefix("/files/")
        stored = client_stack.data_dir / "results" / key
        stored.write_bytes(stored.read_bytes()[:-1] + b"\0")  # storage now serves other bytes than the job made
        with pytest.raises(MimicMotionError) as mismatch:
            client.download(job, tmp_path / "result.mp4")
    assert mismatch.value.code == "download_mismatch" and job.output.sha256 in mismatch.value.message
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part is left


def test_async_client_uploads_runs_lists_and_downloads(client_stack: ClientStack, tmp_path: Path) -> None:
    image = write_image(tmp_path / "me.png", person_image(200, 150, seed=31))
    video = write_video(tmp_path / "dance.mp4", moving_person_frames(3, 96, 128, seed=32), fps=24)
    sizes = sorted((image.stat().st_size, video.stat().st_size))
    threshold = sum(sizes) // 2  # one file direct (the async PUT), the other multipart
    assert sizes[0] <= threshold < sizes[1]

    async def scenario() -> tuple[Job, list[Job], list[str], bytes]:
        seen: list[Job] = []

        async def record(job: Job) -> None:  # an async callback is awaited
            seen.append(job)

        key = client_stack.fresh_key()
        async with AsyncClient(client_stack.base_url, key, multipart_threshold_bytes=threshold) as client:
            job = await client.run(image, video, {**QUICK, "seed": 9}, on_progress=record, timeout=120)
            other = await client.submit(*urls(client_stack), {**SLOW, "seed": 10})
            await client.cancel(other.id)
            listed = [listed.id async for listed in client.list(limit=1)]
            path = await client.download(job, tmp_path / "async.mp4")
            models = [model.name for model in await client.models()]
            wan = await client.submit(*urls(client_stack), {"seed": 11}, model=WAN)
            await client.cancel(wan.id)
            with pytest.raises(InvalidRequestError, match=WAN):  # run passes model on, so Wan refuses QUICK
                await client.run(*urls(client_stack), QUICK, model=WAN, timeout=60)
            assert models == SERVED_MODELS and wan.model == WAN and (await client.get(wan.id)).model == WAN
            return job, seen, listed, path.read_bytes()

    job, seen, listed, video = asyncio.run(scenario())
    assert job.status == "succeeded" and seen[-1].status == "succeeded"
    assert seen[0].status in ("queued", "running") and len(seen) >= 2
    assert listed[1] == job.id and len(listed) == 2
    assert job.output is not None and hashlib.sha256(video).hexdigest() == job.output.sha256


def test_the_second_job_of_a_key_on_the_same_driving_video_reuses_its_poses(client_stack: ClientStack) -> None:
    """The worker's pose cache through the real stack: per key, shown as job.cache in GET /jobs/{id}."""
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        first = client.run(*urls(client_stack), QUICK, timeout=120)
        second = client.run(*urls(client_stack), QUICK, timeout=120)
        again = client.get(second.id)
    with Client(client_stack.base_url, client_stack.fresh_key()) as other_key:
        other = other_key.run(*urls(client_stack), QUICK, timeout=120)
    uses = [job.cache["driving_pose"] if job.cache else None for job in (first, second, again, other)]
    assert uses == ["miss", "hit", "hit", "miss"]
    assert (again.attempts, again.resumed_from_step) == (1, None)  # claimed once, started fresh
