"""POST /uploads and upload:// inputs through the gateway (in process, real Redis, local storage).

Multipart and direct uploads, the checks every file gets (cap, type, truncation, bombs), tenancy,
expiry and deletion; the end-to-end flows with a worker and S3 are in tests/e2e/test_uploads_e2e.py.
"""

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from core.contract.records import utc_now
from core.contract.uploads import upload_key
from core.jobs.store import JobStore
from core.jobs.uploads import Uploads, sweep_expired_uploads
from core.settings import Settings
from core.storage import LocalStorage
from service.app import create_app
from tests.integration.gateway.api import AUTH_A, AUTH_B, BODY
from tests.support.media import (
    moving_person_frames,
    person_image,
    png_bomb_bytes,
    truncated_png_bytes,
    write_image,
    write_truncated_video,
    write_video,
)
from tests.support.task_senders import RecordingSender

UPLOAD_CAP = 400_000


@pytest.fixture
def settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(update={"upload_max_bytes": UPLOAD_CAP, "max_uploads_in_flight_per_key": 2})


@pytest.fixture
def storage(settings: Settings) -> LocalStorage:
    return LocalStorage(settings)


@pytest.fixture
def client(settings: Settings, store: JobStore, storage: LocalStorage, sender: RecordingSender) -> TestClient:
    return TestClient(create_app(settings, store=store, storage=storage, task_sender=sender))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("media")
    write_image(folder / "person.png", person_image(64, 48, seed=1))
    write_video(folder / "drive.mp4", moving_person_frames(6, 64, 48, seed=2), fps=24)
    write_truncated_video(folder / "truncated.mp4", faststart=False)
    return {name: (folder / name).read_bytes() for name in ("person.png", "drive.mp4", "truncated.mp4")}


def upload(client: TestClient, data: bytes, name: str = "file.bin", headers: dict[str, str] = AUTH_A) -> Any:
    return client.post("/uploads", files={"file": (name, data, "application/octet-stream")}, headers=headers)


def uploaded(client: TestClient, data: bytes, name: str, headers: dict[str, str] = AUTH_A) -> dict[str, Any]:
    response = upload(client, data, name, headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_multipart_upload_is_stored_checked_and_usable_as_a_job_input(
    client: TestClient, media: dict[str, bytes], storage: LocalStorage, sender: RecordingSender
) -> None:
    image = uploaded(client, media["person.png"], "me.png")
    video = uploaded(client, media["drive.mp4"], "dance.mp4")

    assert (image["status"], image["kind"], image["content_type"]) == ("ready", "image", "image/png")
    assert (video["kind"], video["content_type"], video["filename"]) == ("video", "video/mp4", "dance.mp4")
    assert image["url"] == f"upload://{image['id']}" and image["size_bytes"] == len(media["person.png"])
    assert image["sha256"] == hashlib.sha256(media["person.png"]).hexdigest()
    assert storage.open_path(upload_key(image["id"])).read_bytes() == media["person.png"]
    assert client.get(f"/uploads/{image['id']}", headers=AUTH_A).json() == image

    response = client.post("/jobs", json={"image_url": image["url"], "video_url": video["url"]}, headers=AUTH_A)
    assert response.status_code == 202, response.text
    assert sender.sent[-1] == response.json()["id"]


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("pdf", 415, "unsupported_media_type"),
        ("truncated_png", 422, "input_not_image"),
        ("truncated_mp4", 422, "input_not_video"),
        ("empty", 422, "invalid_upload"),
        ("bomb", 422, "input_too_large"),
        ("over_cap", 413, "upload_too_large"),
    ],
)
def test_bad_files_are_refused_clearly_and_nothing_is_stored(
    client: TestClient, media: dict[str, bytes], storage: LocalStorage, name: str, status: int, code: str
) -> None:
    data = {
        "pdf": b"%PDF-1.7\n" + b"x" * 500,
        "truncated_png": truncated_png_bytes(),
        "truncated_mp4": media["truncated.mp4"],
        "empty": b"",
        "bomb": png_bomb_bytes(),
        "over_cap": media["person.png"] + b"\0" * UPLOAD_CAP,
    }[name]
    response = upload(client, data)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    if name == "pdf":
        assert "application/pdf" in response.json()["error"]["message"]  # the sniffed type, named
    assert not (storage.root / "uploads").exists() or not any((storage.root / "uploads").iterdir())
    assert not any((storage.root.parent / "scratch").rglob("upload"))  # no scratch file left behind


def test_a_multipart_body_without_the_file_field_is_a_422(client: TestClient) -> None:
    response = client.post("/uploads", files={"photo": ("a.png", b"x")}, headers=AUTH_A)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_upload")
    assert "'file'" in response.json()["error"]["message"]


def test_too_many_uploads_in_flight_for_a_key_is_a_429_and_other_keys_still_upload(
    client: TestClient, store: JobStore, media: dict[str, bytes]
) -> None:
    uploads, owner = Uploads(store.db), client.app.state.api_keys.owner_for(AUTH_A["Authorization"].split()[1])
    for upload_id in ("a" * 32, "b" * 32):  # two multipart uploads still streaming (the limit is 2)
        uploads.begin(owner, upload_id, until=utc_now() + timedelta(minutes=5), limit=2)

    refused = upload(client, media["person.png"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "too_many_uploads")
    assert refused.headers["Retry-After"].isdigit()
    assert upload(client, media["person.png"], headers=AUTH_B).status_code == 201
    uploads.end(owner, "a" * 32)
    assert upload(client, media["person.png"]).status_code == 201


def test_another_keys_upload_is_refused_as_an_unknown_one_naming_the_field(
    client: TestClient, media: dict[str, bytes]
) -> None:
    image = uploaded(client, media["person.png"], "me.png")
    theirs = client.post("/jobs", json={**BODY, "image_url": image["url"]}, headers=AUTH_B)
    unknown = client.post("/jobs", json={**BODY, "image_url": "upload://" + "0" * 32}, headers=AUTH_B)

    for response in (theirs, unknown):
        assert response.status_code == 422
        (detail,) = response.json()["error"]["details"]
        assert detail["field"] == "image_url" and "unknown, expired or deleted" in detail["message"]
    assert client.get(f"/uploads/{image['id']}", headers=AUTH_B).status_code == 404
    assert client.delete(f"/uploads/{image['id']}", headers=AUTH_B).status_code == 404


def test_an_image_upload_given_as_the_video_is_a_422(client: TestClient, media: dict[str, bytes]) -> None:
    image = uploaded(client, media["person.png"], "me.png")
    response = client.post("/jobs", json={**BODY, "video_url": image["url"]}, headers=AUTH_A)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "video_url"


def test_a_malformed_upload_url_is_a_422(client: TestClient) -> None:
    response = client.post("/jobs", json={**BODY, "image_url": "upload://../../etc/passwd"}, headers=AUTH_A)
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "image_url"


def test_a_deleted_upload_is_gone_and_deleting_again_is_a_204(
    client: TestClient, media: dict[str, bytes], storage: LocalStorage
) -> None:
    image = uploaded(client, media["person.png"], "me.png")
    assert client.delete(f"/uploads/{image['id']}", headers=AUTH_A).status_code == 204
    assert client.delete(f"/uploads/{image['id']}", headers=AUTH_A).status_code == 204

    assert not storage.exists(upload_key(image["id"]))
    assert client.get(f"/uploads/{image['id']}", headers=AUTH_A).status_code == 404
    response = client.post("/jobs", json={**BODY, "image_url": image["url"]}, headers=AUTH_A)
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "image_url"


def test_expired_uploads_are_swept_but_a_job_keeps_its_upload_until_its_deadline(
    settings: Settings, store: JobStore, storage: LocalStorage, sender: RecordingSender, media: dict[str, bytes]
) -> None:
    short_lived = settings.model_copy(update={"upload_ttl_s": 60})
    client = TestClient(create_app(short_lived, store=store, storage=storage, task_sender=sender))
    unused = uploaded(client, media["person.png"], "a.png")
    used = uploaded(client, media["person.png"], "b.png")
    job = client.post("/jobs", json={**BODY, "image_url": used["url"], "timeout_s": 600}, headers=AUTH_A).json()
    uploads = Uploads(store.db)
    assert uploads.get(used["id"]).expires_at > utc_now() + timedelta(seconds=600)  # pinned past the deadline
    two_minutes_later = (utc_now() + timedelta(minutes=2)).timestamp()

    swept = sweep_expired_uploads(uploads, storage, now=two_minutes_later)

    assert swept == [unused["id"]]
    assert not storage.exists(upload_key(unused["id"])) and storage.exists(upload_key(used["id"]))
    assert job["status"] == "queued"


def test_a_direct_upload_is_pending_until_completed_then_ready(
    client: TestClient, media: dict[str, bytes], storage: LocalStorage
) -> None:
    data = media["drive.mp4"]
    start = client.post(
        "/uploads", json={"filename": "dance.mp4", "content_type": "video/mp4", "size_bytes": len(data)}, headers=AUTH_A
    )
    assert start.status_code == 201, start.text
    pending = start.json()
    assert pending["status"] == "pending" and pending["upload"]["method"] == "PUT"
    used_too_early = client.post("/jobs", json={**BODY, "video_url": pending["url"]}, headers=AUTH_A)
    assert used_too_early.status_code == 422 and "not complete" in used_too_early.text
    not_sent = client.post(f"/uploads/{pending['id']}/complete", headers=AUTH_A)
    assert (not_sent.status_code, not_sent.json()["error"]["code"]) == (422, "invalid_upload")

    target = urlsplit(pending["upload"]["url"])
    assert client.put(f"{target.path}?{target.query}", content=data, headers=pending["upload"]["headers"]).is_success
    done = client.post(f"/uploads/{pending['id']}/complete", headers=AUTH_A)

    assert done.status_code == 200, done.text
    ready = done.json()
    assert (ready["status"], ready["kind"], ready["sha256"]) == ("ready", "video", hashlib.sha256(data).hexdigest())
    assert storage.open_path(upload_key(pending["id"])).read_bytes() == data
    assert client.post("/jobs", json={**BODY, "video_url": ready["url"]}, headers=AUTH_A).status_code == 202


def test_a_direct_upload_with_other_bytes_than_declared_is_refused_and_may_be_sent_again(
    client: TestClient, media: dict[str, bytes]
) -> None:
    data = media["person.png"]
    pending = client.post(
        "/uploads", json={"content_type": "image/png", "size_bytes": len(data) + 10}, headers=AUTH_A
    ).json()
    target = urlsplit(pending["upload"]["url"])
    client.put(f"{target.path}?{target.query}", content=data)

    response = client.post(f"/uploads/{pending['id']}/complete", headers=AUTH_A)

    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_upload")
    assert f"received {len(data)} bytes" in response.json()["error"]["message"]
    assert client.get(f"/uploads/{pending['id']}", headers=AUTH_A).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"content_type": "video/mp4", "size_bytes": UPLOAD_CAP + 1}, 413, None),
        ({"content_type": "application/pdf", "size_bytes": 10}, 422, "content_type"),
        ({"content_type": "video/mp4", "size_bytes": "10"}, 422, "size_bytes"),
        ({"content_type": "video/mp4", "size_bytes": 0}, 422, "size_bytes"),
    ],
)
def test_a_direct_upload_request_is_checked_before_anything_is_signed(
    client: TestClient, body: dict[str, Any], status: int, field: str | None
) -> None:
    response = client.post("/uploads", json=body, headers=AUTH_A)
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["error"]["details"][0]["field"] == field


def test_a_signed_put_link_is_checked(client: TestClient, media: dict[str, bytes]) -> None:
    pending = client.post("/uploads", json={"content_type": "image/png", "size_bytes": 10}, headers=AUTH_A).json()
    target = urlsplit(pending["upload"]["url"])
    tampered = target.query.replace("signature=", "signature=0")[:-1]
    other_key = target.path.replace("incoming/", "uploads/")

    assert client.put(f"{target.path}?{tampered}", content=b"x").status_code == 403
    assert client.put(f"{other_key}?{target.query}", content=b"x").status_code == 404
    # A download link's signature never authorizes a write, nor a write link a download.
    assert client.get(f"{target.path}?{target.query}").status_code == 403


def test_uploads_need_the_api_key(client: TestClient, media: dict[str, bytes]) -> None:
    assert upload(client, media["person.png"], headers={}).status_code == 401


def test_a_job_reads_the_upload_bytes_from_storage(tmp_path: Path, settings: Settings, store: JobStore,
                                                  storage: LocalStorage, client: TestClient,
                                                  media: dict[str, bytes]) -> None:  # fmt: skip
    from core.execution.inputs import fetch_job_inputs

    image, video = uploaded(client, media["person.png"], "a.png"), uploaded(client, media["drive.mp4"], "b.mp4")
    job_id = client.post("/jobs", json={"image_url": image["url"], "video_url": video["url"]}, headers=AUTH_A).json()
    job = store.get(job_id["id"])

    decoded_image, decoded_video = fetch_job_inputs(job, settings, tmp_path, storage=storage, db=store.db)

    assert decoded_image.shape == (64, 48, 3) and decoded_video.frames.shape[0] == 3
    assert (tmp_path / "image").read_bytes() == media["person.png"]


def test_a_job_whose_upload_was_deleted_after_submission_fails_as_input_unreachable(
    tmp_path: Path, settings: Settings, store: JobStore, storage: LocalStorage, client: TestClient,
    media: dict[str, bytes],
) -> None:
    from core.errors import InputUnreachableError
    from core.execution.inputs import fetch_job_inputs

    image = uploaded(client, media["person.png"], "a.png")
    job_id = client.post("/jobs", json={**BODY, "image_url": image["url"]}, headers=AUTH_A).json()["id"]
    assert client.delete(f"/uploads/{image['id']}", headers=AUTH_A).status_code == 204

    with pytest.raises(InputUnreachableError, match="no longer exists"):
        fetch_job_inputs(store.get(job_id), settings, tmp_path, storage=storage, db=store.db)


def test_an_expired_upload_is_refused_at_submission_naming_the_field(
    client: TestClient, store: JobStore, media: dict[str, bytes]
) -> None:
    image = uploaded(client, media["person.png"], "a.png")
    uploads = Uploads(store.db)
    uploads.save(uploads.get(image["id"]).model_copy(update={"expires_at": utc_now() - timedelta(seconds=1)}))

    response = client.post("/jobs", json={**BODY, "image_url": image["url"]}, headers=AUTH_A)

    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "image_url" and "expired" in detail["message"]
    assert client.get(f"/uploads/{image['id']}", headers=AUTH_A).status_code == 404
