"""What the gateway tests share: two API keys, a minimal job body, and calls that play a client or a worker."""

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from core.contract.records import Job, JobOutput, JobStatus
from core.jobs.store import JobStore
from core.storage import LocalStorage

KEY_A, KEY_B = "key-a-0123456789", "key-b-9876543210"
AUTH_A, AUTH_B = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
BODY = {"image_url": "https://example.com/person.png", "video_url": "https://example.com/dance.mp4"}


def submit(client: TestClient, headers: dict[str, str] = AUTH_A, **body: Any) -> dict[str, Any]:
    """POST ``BODY`` plus ``body``; the accepted job as JSON."""
    response = client.post("/jobs", json={**BODY, **body}, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def succeed(store: JobStore, storage: LocalStorage, job_id: str, tmp_path: Path) -> None:
    """Play the worker: store two result files as it does, then record the output."""
    stored = {}
    for name, data in (("output.mp4", b"video-bytes"), ("pose.mp4", b"pose-bytes")):
        (tmp_path / name).write_bytes(data)
        stored[name] = storage.put_file(f"jobs/{job_id}/{name}", tmp_path / name, "video/mp4")
    store.claim(job_id, "w1", lease_s=60)
    video = stored["output.mp4"]
    output = JobOutput(
        video_key=video.key, pose_video_key=stored["pose.mp4"].key, width=64, height=112, num_frames=4, fps=15,
        duration_s=4 / 15, size_bytes=video.size_bytes, sha256=video.sha256,
    )  # fmt: skip
    store.transition(job_id, JobStatus.succeeded, worker="w1", output=output, timings={"pose": 0.5})


def stored_jobs(store: JobStore) -> list[Job]:
    """Every job record in the store, whatever its owner."""
    keys = list(store.db.client.scan_iter(match=store.db.keys.job("*")))
    return [store.get(key.split(":")[-1]) for key in keys]
