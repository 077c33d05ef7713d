"""GET /jobs/{id}/events: the Server-Sent Events stream of a job, resumable with Last-Event-ID."""

import json
import threading
from typing import Any

from fastapi.testclient import TestClient

from core.contract.records import JobError, JobStatus, Progress, Stage
from core.jobs.store import JobStore
from core.settings import Settings
from service.app import create_app
from tests.integration.gateway.api import AUTH_A, AUTH_B, submit
from tests.support.task_senders import RecordingSender


def sse_events(text: str) -> list[tuple[str, int, dict[str, Any]]]:
    events = []
    for frame in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":"))
        events.append((fields["event"], int(fields["id"].split("-")[0]), json.loads(fields["data"])))
    return events


def test_events_stream_follows_the_job_until_it_finishes(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender
) -> None:
    class WatchedStore(JobStore):
        read = threading.Event()
        num_reads = 0

        def get(self, job_id: str, *, owner: str | None = None) -> Any:
            job = super().get(job_id, owner=owner)
            WatchedStore.num_reads += 1
            if WatchedStore.num_reads == 2:  # the handler's ownership check, then the stream's first read
                self.read.set()
            return job

    watched = WatchedStore(store.db)
    app = create_app(gateway_settings, store=watched, task_sender=sender)
    app.state.sse_poll_s = 0.01
    client = TestClient(app)
    job = submit(client)

    def work() -> None:  # plays the worker once the stream has seen the queued job
        assert WatchedStore.read.wait(timeout=10)
        store.claim(job["id"], "w1", lease_s=60)
        store.update_running(job["id"], "w1", progress=Progress(stage=Stage.denoising, step=1, total_steps=4))
        store.transition(
            job["id"], JobStatus.failed, worker="w1", error=JobError(code="no_person_detected", message="no person")
        )

    worker = threading.Thread(target=work)
    worker.start()
    response = client.get(f"/jobs/{job['id']}/events", headers=AUTH_A)
    worker.join(timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[0][0] == "status" and events[0][2]["status"] == "queued"
    assert events[-1][0] == "status" and events[-1][2]["error"]["code"] == "no_person_detected"
    assert [event_id for _, event_id, _ in events] == list(range(1, len(events) + 1))


def test_events_resume_after_last_event_id_without_repeating_and_end_after_the_terminal_event(
    client: TestClient, store: JobStore
) -> None:
    client.app.state.sse_poll_s = 0.01  # type: ignore[attr-defined]
    job = submit(client)
    store.claim(job["id"], "w1", lease_s=60)
    store.transition(job["id"], JobStatus.canceled)
    first = client.get(f"/jobs/{job['id']}/events", headers=AUTH_A)
    frames = [frame for frame in first.text.strip().split("\n\n")]
    assert len(frames) == 1 and "event: status" in frames[0] and '"status":"canceled"' in frames[0]
    last_id = next(line[4:] for line in frames[0].splitlines() if line.startswith("id: "))
    # The client saw the terminal state: resuming after it ends at once, with nothing repeated.
    resumed = client.get(f"/jobs/{job['id']}/events", headers={**AUTH_A, "Last-Event-ID": last_id})
    assert resumed.status_code == 200 and resumed.text == ""
    # A client that saw an older state gets the current one, numbered after its last id.
    stale = client.get(f"/jobs/{job['id']}/events", headers={**AUTH_A, "Last-Event-ID": "7-000000000000"})
    events = sse_events(stale.text)
    assert [(kind, event_id, data["status"]) for kind, event_id, data in events] == [("status", 8, "canceled")]
    # Ids it never sent are ignored: the stream starts over.
    assert sse_events(client.get(f"/jobs/{job['id']}/events", headers={**AUTH_A, "Last-Event-ID": "x"}).text)[0][1] == 1


def test_events_of_unknown_or_another_keys_job_are_404(client: TestClient) -> None:
    job = submit(client)
    for job_id, headers in (("0" * 32, AUTH_A), (job["id"], AUTH_B)):
        response = client.get(f"/jobs/{job_id}/events", headers=headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
