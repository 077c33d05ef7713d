"""Results through /files: signed, expiring links to local storage that only open what they were made for."""

from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from fastapi.testclient import TestClient

from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import LocalStorage, create_storage
from tests.integration.gateway.api import AUTH_A, submit, succeed


def test_succeeded_job_has_fresh_signed_urls_that_download(
    client: TestClient, store: JobStore, gateway_settings: Settings, tmp_path: Path
) -> None:
    storage = create_storage(gateway_settings)  # as the worker builds it: same directory, same signing key
    assert isinstance(storage, LocalStorage)
    job = submit(client)
    succeed(store, storage, job["id"], tmp_path)
    shown = client.get(f"/jobs/{job['id']}", headers=AUTH_A).json()
    assert shown["status"] == "succeeded" and shown["queue_position"] is None
    output = shown["output"]
    assert (output["width"], output["height"], output["num_frames"], output["fps"]) == (64, 112, 4, 15)
    assert output["expires_at"] and shown["timings"] == {"pose": 0.5}
    video = client.get(output["video_url"])  # no API key: the signature is the credential
    assert video.status_code == 200 and video.content == b"video-bytes"
    assert client.get(output["pose_video_url"]).content == b"pose-bytes"
    assert client.get(with_query(output["video_url"], signature="0" * 64)).status_code == 403
    assert client.get(with_query(output["video_url"], expires="1000")).status_code == 403
    assert output["video_url"].startswith(f"http://testserver/files/jobs/{job['id']}/output.mp4?")
    forged = output["video_url"].replace(f"{job['id']}/output.mp4", f"{job['id']}/pose.mp4")
    assert client.get(forged).status_code == 403
    # A path that is not the one signed (however ".." is resolved on the way) is refused before any lookup.
    assert client.get(output["video_url"].replace("/output.mp4", "/../output.mp4")).status_code == 403
    storage.delete(f"jobs/{job['id']}/output.mp4")
    gone = client.get(output["video_url"])
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))
