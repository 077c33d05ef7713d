"""Prefer: wait on POST /jobs, and DELETE /jobs/{id} (in-process gateway, real Redis, local storage)."""

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.contract.records import JobStatus
from core.jobs.store import JobStore
from core.storage import LocalStorage
from service.prefer import parse_prefer_wait
from tests.integration.gateway.api import AUTH_A, AUTH_B, BODY, submit, succeed
from tests.support.processes import wait_for


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("wait=5", 5),
        ("respond-async, wait=7", 7),
        ("wait=1000", 60),
        ("wait=99999999999999999999", 60),
        ('wait="3"', 3),
        ("wait=abc", None),
        ("wait=\u00b2", None),  # a superscript two: str.isdigit() says yes, int() says no
        ("wait=\uff15", None),  # a full-width five: int() would read it
        ("wait=", None),
        ("handling=lenient", None),
        (None, None),
    ],
)
def test_prefer_wait_is_read_strictly_and_clamped(header: str | None, seconds: int | None) -> None:
    assert parse_prefer_wait(header) == seconds


def test_prefer_wait_answers_202_with_the_job_as_it_is_when_the_time_is_up(client: TestClient) -> None:
    response = client.post("/jobs", json=BODY, headers={**AUTH_A, "Prefer": "wait=1"})
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.json()["status"] == "queued"


def test_prefer_wait_answers_200_as_soon_as_the_job_is_terminal(client: TestClient, store: JobStore) -> None:
    def cancel_once_created() -> None:  # plays the job's end while the request waits
        wait_for(lambda: bool(store.queued_ids(1)), timeout_s=10, message="the job to be created")
        store.transition(store.queued_ids(1)[0], JobStatus.canceled)

    ender = threading.Thread(target=cancel_once_created)
    ender.start()
    response = client.post("/jobs", json=BODY, headers={**AUTH_A, "Prefer": "wait=1000"})
    ender.join()

    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=60"  # clamped, and said so
    assert response.json()["status"] == "canceled"


def test_without_prefer_no_preference_is_applied(client: TestClient) -> None:
    response = client.post("/jobs", json=BODY, headers={**AUTH_A, "Prefer": "wait=nope"})
    assert response.status_code == 202 and "Preference-Applied" not in response.headers


def test_delete_removes_a_finished_jobs_files_and_keeps_a_small_record(
    client: TestClient, store: JobStore, gateway_settings: object, tmp_path: Path
) -> None:
    storage = client.app.state.storage
    assert isinstance(storage, LocalStorage)
    job_id = submit(client)["id"]
    succeed(store, storage, job_id, tmp_path)
    old_url = client.get(f"/jobs/{job_id}", headers=AUTH_A).json()["output"]["video_url"]
    assert client.get(old_url).status_code == 200

    deleted = client.delete(f"/jobs/{job_id}", headers=AUTH_A)

    assert deleted.status_code == 200
    job = deleted.json()
    assert (job["status"], job["output"]) == ("succeeded", None) and job["data_removed_at"] is not None
    assert client.get(f"/jobs/{job_id}", headers=AUTH_A).json() == job
    assert client.get(old_url).status_code == 404
    assert not (storage.root / "jobs" / job_id).exists()
    again = client.delete(f"/jobs/{job_id}", headers=AUTH_A)
    assert again.status_code == 200 and again.json()["data_removed_at"] == job["data_removed_at"]


def test_delete_cancels_an_unfinished_job(client: TestClient, store: JobStore) -> None:
    job_id = submit(client)["id"]

    job = client.delete(f"/jobs/{job_id}", headers=AUTH_A).json()

    assert job["status"] == "canceled" and job["data_removed_at"] is not None
    assert store.get(job_id).status is JobStatus.canceled


def test_delete_of_another_keys_job_is_a_404_and_changes_nothing(client: TestClient, store: JobStore) -> None:
    job_id = submit(client)["id"]
    assert client.delete(f"/jobs/{job_id}", headers=AUTH_B).status_code == 404
    assert store.get(job_id).status is JobStatus.queued and store.get(job_id).data_removed_at is None
