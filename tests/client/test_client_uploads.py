"""Uploads through the Python client on the real stack (local storage): multipart and direct (signed PUT, then
complete), local paths and bytes as job inputs, the size limits, Prefer: wait, and DELETE of a job's data."""

import hashlib
import time
from pathlib import Path

import httpx
import pytest
from mimicmotion_client import Client, MimicMotionError, NotFoundError, UploadTooLargeError

from tests.support.client_stack import QUICK, ClientStack
from tests.support.faulty_proxy import faulty_proxy
from tests.support.media import moving_person_frames, person_image, write_image, write_video

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("client-local-inputs")
    image = write_image(directory / "me.png", person_image(200, 150, seed=11))
    video = write_video(directory / "dance.mp4", moving_person_frames(3, 96, 128, seed=12), fps=24)
    return image, video


def test_multipart_upload_is_ready_and_a_job_runs_from_a_path_and_bytes(
    client_stack: ClientStack, local_inputs: tuple[Path, Path]
) -> None:
    image, video = local_inputs
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        upload = client.upload(image)
        # image as a str path, video as bytes: both uploaded by submit, then the job reads them from storage
        job = client.run(str(image), video.read_bytes(), QUICK, timeout=120)
        fetched = client.get_upload(upload.id)

    assert upload.status == "ready" and upload.kind == "image" and upload.url == f"upload://{upload.id}"
    assert upload.size_bytes == image.stat().st_size
    assert upload.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert fetched.id == upload.id and fetched.status == "ready"
    assert job.status == "succeeded"


def test_files_over_the_threshold_go_by_signed_put_and_complete(
    client_stack: ClientStack, local_inputs: tuple[Path, Path]
) -> None:
    image, video = local_inputs
    key = client_stack.fresh_key()
    with faulty_proxy(client_stack.base_url) as (proxy, url), Client(url, key, multipart_threshold_bytes=1) as client:
        with video.open("rb") as file:
            file.seek(0)
            uploaded = client.upload(file)  # an open file object, read from where it stands
        job = client.run(image, uploaded, QUICK, timeout=120)
        completes = proxy.seen("POST", "/uploads/")

    assert uploaded.status == "ready" and uploaded.kind == "video" and uploaded.filename == "dance.mp4"
    assert uploaded.sha256 == hashlib.sha256(video.read_bytes()).hexdigest()
    # Two direct uploads (the video above, the image inside run), each completed after its PUT.
    assert sorted(r.path.rsplit("/", 1)[-1] for r in completes) == ["complete", "complete"]
    assert job.status == "succeeded"


def test_a_file_over_a_known_limit_is_refused_before_sending(
    client_stack: ClientStack, local_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    image, _ = local_inputs
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as file:
        file.truncate(300_000_000)  # sparse: over the gateway's 200 MB cap without using the disk
    key = client_stack.fresh_key()
    with faulty_proxy(client_stack.base_url) as (proxy, url):
        with Client(url, key, max_upload_bytes=1000) as client, pytest.raises(UploadTooLargeError) as known:
            client.upload(image)
        assert proxy.requests == []  # nothing was sent
        started = time.monotonic()
        with Client(url, key) as client, pytest.raises(UploadTooLargeError) as declared:
            client.upload(huge)
        assert time.monotonic() - started < 10  # refused on its declared size, not after 300 MB
        assert [r.method for r in proxy.requests] == ["POST"]

    assert known.value.status is None and known.value.code == "upload_too_large"
    assert declared.value.status == 413 and declared.value.code == "upload_too_large"


def test_prefer_wait_answers_with_the_finished_job(client_stack: ClientStack) -> None:
    inputs = (f"{client_stack.inputs_url}/person.png", f"{client_stack.inputs_url}/drive.mp4")
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        job = client.submit(*inputs, QUICK, wait=60)
    assert job.status == "succeeded" and job.output is not None


def test_delete_removes_the_jobs_results_and_deleted_uploads_are_gone(
    client_stack: ClientStack, local_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    image, video = local_inputs
    with Client(client_stack.base_url, client_stack.fresh_key()) as client:
        job = client.run(image, video, QUICK, timeout=120)
        assert job.output is not None
        old_url = job.output.video_url
        deleted = client.delete(job.id)
        again = client.delete(job.id)  # idempotent
        with pytest.raises(MimicMotionError) as no_output:
            client.download(job, tmp_path / "gone.mp4")
        upload = client.upload(image)
        client.delete_upload(upload.id)
        with pytest.raises(NotFoundError):
            client.get_upload(upload.id)

    assert deleted.data_removed_at is not None and deleted.output is None and deleted.status == "succeeded"
    assert again.data_removed_at == deleted.data_removed_at
    assert no_output.value.code == "no_output" and "removed" in no_output.value.message
    assert httpx.get(old_url, trust_env=False).status_code == 404
    assert not (tmp_path / "gone.mp4").exists()
