"""The client's sans-IO core, no network: the SSE parser and reconnect rules, retry delays, upload sources, and
the order of requests in a direct upload (what both Client and AsyncClient send)."""

import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from mimicmotion_client import APIConnectionError, MimicMotionError, RetryPolicy
from mimicmotion_client.config import ClientConfig
from mimicmotion_client.protocol import JobRequest, Reply, submit, upload
from mimicmotion_client.retry import parse_retry_after
from mimicmotion_client.sources import source_of
from mimicmotion_client.sse import JobEventStream, SSEParser
from mimicmotion_client.types import Job, parse_datetime


def job_json(status: str, step: int = 0) -> str:
    progress = {"stage": "denoising", "step": step, "total_steps": 10, "fraction": 0.5}
    return json.dumps({"id": "j1", "status": status, "progress": progress})


def test_sse_parser_joins_data_lines_and_skips_comments() -> None:
    parser = SSEParser()
    lines = [": keep-alive", "", "event: status", "id: 7-abc", "data: {\"a\":", "data: 1}", ""]
    assert [parser.feed(line) for line in lines][-1] == ("status", "7-abc", '{"a":\n1}')
    assert [parser.feed(line) for line in ["data:x", ""]][-1] == ("message", None, "x")


def test_event_stream_resumes_from_the_last_id_and_ends_at_a_terminal_job() -> None:
    stream = JobEventStream("j1", retry=RetryPolicy())
    assert "Last-Event-ID" not in stream.request().headers
    for line in ["event: progress", "id: 3-aaa", f"data: {job_json('running', 4)}", ""]:
        event = stream.feed(line)
    assert event is not None and event.job.progress is not None and event.job.progress.step == 4
    assert stream.request().headers["Last-Event-ID"] == "3-aaa" and not stream.done
    for line in ["event: status", "id: 4-bbb", f"data: {job_json('succeeded')}", ""]:
        stream.feed(line)
    assert stream.done


def test_event_stream_reconnects_with_backoff_until_its_window_runs_out() -> None:
    now = [0.0]
    stream = JobEventStream("j1", retry=RetryPolicy(random=lambda: 1.0), reconnect_for_s=10, clock=lambda: now[0])
    delays = [stream.dropped(ConnectionError("reset")) for _ in range(3)]
    assert delays == [0.5, 1.0, 2.0]
    now[0] = 10.0
    with pytest.raises(APIConnectionError, match="10 s"):
        stream.dropped(ConnectionError("reset"))


def test_a_clean_end_before_the_terminal_event_reconnects_but_an_empty_one_ends() -> None:
    stream = JobEventStream("j1", retry=RetryPolicy(random=lambda: 0.0))
    stream.request()
    for line in ["id: 1-a", f"data: {job_json('running')}", ""]:
        stream.feed(line)
    assert stream.ended() == 0.25 and not stream.done
    stream.request()
    assert stream.ended() == 0.0 and stream.done  # nothing new: the client had seen the last state


def test_retry_delays_back_off_with_jitter_and_retry_after_wins() -> None:
    low, high = RetryPolicy(random=lambda: 0.0), RetryPolicy(random=lambda: 1.0)
    assert [low.backoff_s(n) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert [high.backoff_s(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert high.delay_after_status(0, 503, {"retry-after": "3"}) == 3.0
    assert high.delay_after_status(0, 429, {"retry-after": "3600"}) == 60.0  # capped
    assert high.delay_after_status(0, 404, {}) is None
    assert high.delay_after_status(4, 503, {}) is None  # the fifth try was the last
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 28 <= (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 30
    assert parse_retry_after("soon") is None


def test_sources_measure_file_objects_from_where_they_stand_and_sniff_bytes() -> None:
    file = io.BytesIO(b"skip\x89PNG\r\n\x1a\n....")
    file.seek(4)
    source = source_of(file, name="image")
    assert (source.size_bytes, source.content_type, source.filename) == (12, "image/png", "image.png")
    with source.opened() as opened:
        assert b"".join(source.chunks(opened)).startswith(b"\x89PNG")
    assert source_of(b"\x00\x00\x00\x18ftypmp42", name="video").content_type == "video/mp4"


def test_a_direct_upload_creates_puts_without_the_api_key_then_completes() -> None:
    flow = upload(source_of(b"\x89PNG\r\n\x1a\n" * 4, name="image"), multipart_threshold_bytes=8, max_upload_bytes=None)
    create = next(flow)
    assert (create.method, create.url, create.json["size_bytes"]) == ("POST", "/uploads", 32)
    target = {"url": "http://storage.test/incoming/u1?sig=x", "method": "PUT", "headers": {"Content-Type": "image/png"}}
    put = flow.send(Reply(201, {}, {"id": "u1", "status": "pending", "upload": target}))
    config = ClientConfig.resolve("http://gw.test", "secret-key", timeout_s=5, retry=None,
                                  multipart_threshold_bytes=None, max_upload_bytes=None)  # fmt: skip
    headers = config.headers(put)
    assert (put.method, put.url, headers["Content-Length"]) == ("PUT", target["url"], "32")
    assert "Authorization" not in headers and headers["Content-Type"] == "image/png"
    complete = flow.send(Reply(200, {}, None))
    assert (complete.method, complete.url) == ("POST", "/uploads/u1/complete")
    assert config.headers(complete)["Authorization"] == "Bearer secret-key"


def test_submit_refuses_an_input_that_is_neither_a_url_nor_a_file_before_any_request() -> None:
    flow = submit("person.png-missing", "https://x.test/v.mp4", JobRequest(), multipart_threshold_bytes=8,
                  max_upload_bytes=None, read_timeout_s=5)  # fmt: skip
    with pytest.raises(MimicMotionError, match="image must be") as refused:
        next(flow)
    assert refused.value.code == "invalid_input"


def test_a_job_carries_its_attempts_resume_step_and_cache_and_absent_ones_are_none() -> None:
    resumed = Job.from_json({"id": "j1", "status": "succeeded", "attempts": 2, "resumed_from_step": 25,
                             "cache": {"driving_pose": "hit"}})  # fmt: skip
    assert (resumed.attempts, resumed.resumed_from_step, resumed.cache) == (2, 25, {"driving_pose": "hit"})
    fresh = Job.from_json({"id": "j2", "status": "queued"})  # an older gateway's job: none of these fields
    assert (fresh.attempts, fresh.resumed_from_step, fresh.cache) == (0, None, None)


def test_submit_names_a_model_only_when_given_and_a_job_without_one_is_mimicmotions() -> None:
    def body(request: JobRequest) -> dict[str, object]:
        flow = submit("https://x.test/p.png", "https://x.test/v.mp4", request, multipart_threshold_bytes=8,
                      max_upload_bytes=None, read_timeout_s=5)  # fmt: skip
        return dict(next(flow).json)

    assert body(JobRequest(params={"seed": 1}, model="wan2.2-animate"))["model"] == "wan2.2-animate"
    assert "model" not in body(JobRequest(params={"seed": 1}))  # the gateway's default; an older gateway takes it too
    assert Job.from_json({"id": "j1", "status": "queued"}).model == "mimicmotion-1.1"  # a gateway from before models
    assert Job.from_json({"id": "j1", "status": "queued", "model": "wan2.2-animate"}).model == "wan2.2-animate"


def test_timestamps_with_z_parse_on_every_python() -> None:
    assert parse_datetime("2026-12-04T01:02:03.456789Z") == datetime(2026, 12, 4, 1, 2, 3, 456789, UTC)
