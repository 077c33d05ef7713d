"""The API's request and response shapes: URL rules, webhook events, metadata caps, the public view."""

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.contract.params import JobParams
from core.contract.records import Job, JobError, JobStatus, Progress, Stage
from service.errors import allowed_range
from service.schemas import DEFAULT_WEBHOOK_EVENTS, MAX_METADATA_BYTES, JobCreate, JobPublic

URLS = {"image_url": "https://example.com/person.png", "video_url": "http://example.com:8080/dance.mp4"}


def _create(**fields: Any) -> JobCreate:
    return JobCreate.model_validate({**URLS, **fields})


def test_job_create_defaults_webhook_events_to_started_and_terminal() -> None:
    body = _create()
    assert body.webhook_events == ["job.started", "job.succeeded", "job.failed", "job.canceled"]
    assert tuple(body.webhook_events) == DEFAULT_WEBHOOK_EVENTS
    assert body.params is None and body.metadata == {} and body.webhook_url is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "example.com/a.png",
        "http:///no-host",
        "https://exa mple.com/a.png",
        "https://example.com/a\n.png",
        "https://example.com:99999/a.png",
        "gopher://example.com/",
        "https://example.com/" + "a" * 2048,
        "",
    ],
)
def test_job_create_refuses_non_http_or_malformed_urls(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        _create(video_url=url)
    assert info.value.errors()[0]["loc"] == ("video_url",)


def test_job_create_refuses_bad_webhook_url_and_unknown_events() -> None:
    with pytest.raises(ValidationError, match="webhook_url"):
        _create(webhook_url="javascript:alert(1)")
    with pytest.raises(ValidationError, match="webhook_events"):
        _create(webhook_events=["job.exploded"])


def test_job_create_dedupes_webhook_events_keeping_order() -> None:
    body = _create(webhook_events=["job.progress", "job.failed", "job.progress"])
    assert body.webhook_events == ["job.progress", "job.failed"]


def test_job_create_refuses_unknown_fields_and_bad_params() -> None:
    with pytest.raises(ValidationError, match="prompt"):
        _create(prompt="dance")
    with pytest.raises(ValidationError) as info:
        _create(params={"num_inference_steps": 0})
    assert info.value.errors()[0]["loc"] == ("params", "num_inference_steps")


def test_job_create_caps_metadata_size_and_depth() -> None:
    _create(metadata={"k": "x" * (MAX_METADATA_BYTES - 16)})
    with pytest.raises(ValidationError, match="bytes of JSON"):
        _create(metadata={"k": "x" * MAX_METADATA_BYTES})
    _create(metadata={"a": {"b": {"c": {"d": {"e": 1}}}}})
    with pytest.raises(ValidationError, match="nested deeper"):
        _create(metadata={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})


def test_job_create_refuses_deep_metadata_without_recursing() -> None:
    # 100,000 levels: a recursive walk (or json.dumps) would pass Python's recursion limit of 1,000.
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested deeper"):
        _create(metadata={"a": deep})


@pytest.mark.parametrize("value", [True, "30", 30.0])
def test_job_create_timeout_s_is_a_strict_integer(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        _create(timeout_s=value)
    assert info.value.errors()[0]["loc"] == ("timeout_s",)
    assert _create(timeout_s=30).timeout_s == 30


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8) | st.booleans(), max_size=8))
def test_job_create_accepts_any_small_flat_metadata(metadata: dict[str, object]) -> None:
    assert _create(metadata=metadata).metadata == metadata


def test_allowed_range_is_read_from_job_params() -> None:
    assert allowed_range(("body", "params", "num_inference_steps")) == "1 to 100"
    assert allowed_range(("body", "params", "resolution")) == "128 to 1024, a multiple of 64"
    assert allowed_range(("body", "params", "seed")) is not None
    assert allowed_range(("body", "image_url")) is None


def _job(**changes: object) -> Job:
    job = Job(id="j1", owner="o", image_url=URLS["image_url"], video_url=URLS["video_url"],
              params=JobParams(seed=7), metadata={"user": 3})
    return job.model_copy(update=changes)


def test_job_public_shows_queue_position_only_while_queued() -> None:
    assert JobPublic.from_job(_job(), queue_position=4, output=None).queue_position == 4
    running = _job(status=JobStatus.running, started_at=datetime.now(UTC), progress=Progress(stage=Stage.pose))
    view = JobPublic.from_job(running, queue_position=4, output=None)
    assert view.queue_position is None and view.progress == Progress(stage=Stage.pose)


def test_job_public_hides_owner_and_worker_and_keeps_error_and_seed() -> None:
    failed = _job(status=JobStatus.failed, error=JobError(code="no_person_detected", message="none"), worker="w1",
                  attempts=2, resumed_from_step=12)  # fmt: skip
    dumped = JobPublic.from_job(failed, queue_position=None, output=None).model_dump(mode="json")
    assert "owner" not in dumped and "worker" not in dumped
    # DESIGN.md, resumable denoising: the claims counted and the step the latest one resumed from are public.
    assert (dumped["attempts"], dumped["resumed_from_step"]) == (2, 12)
    assert dumped["error"] == {"code": "no_person_detected", "message": "none"}
    assert dumped["params"]["seed"] == 7 and dumped["metadata"] == {"user": 3}
