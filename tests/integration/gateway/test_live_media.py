"""What a running job shows: preview_url and pose_video_url minted from the record's keys (in-process gateway)."""

from pathlib import Path

from fastapi.testclient import TestClient

from core.contract.records import JobStatus
from core.jobs.store import JobStore
from core.storage import LocalStorage
from service.schemas import JobPublic
from service.sse import fingerprint
from tests.integration.gateway.api import AUTH_A, submit, succeed


def test_a_running_job_shows_its_pose_video_and_newest_preview_and_a_finished_one_no_preview(
    client: TestClient, store: JobStore, tmp_path: Path
) -> None:
    storage = client.app.state.storage
    assert isinstance(storage, LocalStorage)
    job_id = submit(client)["id"]
    assert store.claim(job_id, "w1", lease_s=60) is not None
    prefix = f"jobs/{job_id}/attempt-1/"
    for name, data in (("pose.mp4", b"pose"), ("preview-0004.webp", b"RIFF....WEBP")):
        (tmp_path / name).write_bytes(data)
        storage.put_file(prefix + name, tmp_path / name, "application/octet-stream")
    store.update_running(job_id, "w1", pose_video_key=f"{prefix}pose.mp4", preview_key=f"{prefix}preview-0004.webp")

    running = client.get(f"/jobs/{job_id}", headers=AUTH_A).json()

    assert client.get(running["pose_video_url"]).content == b"pose"
    assert client.get(running["preview_url"]).content == b"RIFF....WEBP"
    store.transition(job_id, JobStatus.canceled)
    ended = client.get(f"/jobs/{job_id}", headers=AUTH_A).json()
    assert ended["preview_url"] is None  # the worker deletes the last preview when the job ends
    assert ended["pose_video_url"] is not None


def test_a_succeeded_job_shows_its_outputs_pose_video(client: TestClient, store: JobStore, tmp_path: Path) -> None:
    job_id = submit(client)["id"]
    succeed(store, client.app.state.storage, job_id, tmp_path)
    job = client.get(f"/jobs/{job_id}", headers=AUTH_A).json()
    assert job["pose_video_url"].split("?")[0] == job["output"]["pose_video_url"].split("?")[0]


def test_a_new_preview_is_a_new_event_but_a_re_minted_url_is_not(client: TestClient) -> None:
    view = JobPublic.model_validate(submit(client))
    first = view.model_copy(update={"preview_url": "http://x/files/jobs/j/attempt-1/preview-0002.webp?expires=1&s=a"})
    reminted = first.model_copy(update={"preview_url": first.preview_url.replace("expires=1", "expires=2")})
    newer = first.model_copy(update={"preview_url": first.preview_url.replace("0002", "0004")})
    assert fingerprint(first) == fingerprint(reminted)
    assert fingerprint(first) != fingerprint(newer)
