"""A job's Server-Sent Events, without I/O: the line parser and the reconnect rules both clients follow.

``JobEventStream`` is fed the lines of one connection at a time. It remembers the last event id, so the
next connection asks for ``Last-Event-ID`` and the gateway continues after it (no state is sent twice),
and it says when the stream is over: once a terminal job was seen. A dropped connection, or a refusal the
gateway would lift (503, 429), is retried with backoff for up to ``reconnect_for_s`` without any event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

from mimicmotion_client.errors import (
    CONNECTION_ERROR,
    WAIT_TIMEOUT,
    APIConnectionError,
    WaitTimeoutError,
    error_for_status,
)
from mimicmotion_client.protocol import RequestSpec
from mimicmotion_client.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from mimicmotion_client.types import Event, Job

STREAM_READ_TIMEOUT_S = 60.0  # the gateway sends a keep-alive comment every 15 s


@dataclass
class _Frame:
    """The fields of the event being read (SSE: they accumulate until a blank line dispatches them)."""

    event: str = ""
    data: list[str] = field(default_factory=list)
    id: str | None = None


class SSEParser:
    """The ``text/event-stream`` format (WHATWG HTML §9.2.6), one line at a time."""

    def __init__(self) -> None:
        self._frame = _Frame()

    def feed(self, line: str) -> tuple[str, str | None, str] | None:
        """(event type, id, data) when ``line`` ends an event; None otherwise (comments, fields)."""
        if line == "":
            frame, self._frame = self._frame, _Frame()
            if not frame.data:
                return None
            return frame.event or "message", frame.id, "\n".join(frame.data)
        if line.startswith(":"):
            return None  # a comment: the gateway's keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._frame.event = value
        elif name == "data":
            self._frame.data.append(value)
        elif name == "id" and "\0" not in value:
            self._frame.id = value
        return None


class JobEventStream:
    """The state of one job's event stream across reconnections."""

    def __init__(
        self,
        job_id: str,
        *,
        retry: RetryPolicy,
        last_event_id: str | None = None,
        reconnect_for_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.last_event_id = last_event_id
        self.done = False
        self._retry, self._reconnect_for_s, self._clock = retry, reconnect_for_s, clock
        self._parser = SSEParser()
        self._failures = 0
        self._failing_since: float | None = None
        self._events_this_connection = 0

    def request(self, *, read_timeout_s: float = STREAM_READ_TIMEOUT_S) -> RequestSpec:
        """The GET for the next connection, resuming after the last event seen."""
        self._parser = SSEParser()
        self._events_this_connection = 0
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return RequestSpec("GET", f"/jobs/{quote(self.job_id, safe='')}/events", headers=headers,
                           read_timeout_s=read_timeout_s)  # fmt: skip

    def feed(self, line: str) -> Event | None:
        """One line of the open connection; the Event it completes, if any."""
        parsed = self._parser.feed(line)
        if parsed is None:
            return None
        kind, event_id, data = parsed
        if event_id is not None:
            self.last_event_id = event_id
        job = Job.from_json(json.loads(data))
        self._events_this_connection += 1
        self._failures, self._failing_since = 0, None  # the connection works: a later drop starts afresh
        self.done = job.is_terminal
        return Event(type=kind, id=event_id, job=job)

    def refused(self, status: int, headers: Mapping[str, str], body: object, text: str) -> float:
        """The gateway answered the stream's GET with ``status`` (not 200): seconds until trying again.

        Raises:
            MimicMotionError: a status that will not change by asking again (404, 401 ...).
        """
        if status not in RETRYABLE_STATUSES:
            raise error_for_status(status, body, text)
        retry_after = parse_retry_after(headers.get("retry-after"))
        delay = self._next_delay(lambda: error_for_status(status, body, text))
        return delay if retry_after is None else min(retry_after, self._retry.max_retry_after_s)

    def dropped(self, error: Exception) -> float:
        """The connection failed or broke: seconds until reconnecting (raises once ``reconnect_for_s`` ran out)."""
        return self._next_delay(
            lambda: APIConnectionError(
                f"the event stream of job {self.job_id} stayed unreachable for {self._reconnect_for_s:g} s: {error}",
                code=CONNECTION_ERROR,
            )
        )

    def ended(self) -> float:
        """The gateway closed the stream cleanly. It does that once the job is terminal; a connection that
        ended with no event means the caller had seen that last state already."""
        if self.done or self._events_this_connection == 0:
            self.done = True
            return 0.0
        return self.dropped(ConnectionError("the stream ended before the job finished"))

    def _next_delay(self, give_up: Callable[[], Exception]) -> float:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self._reconnect_for_s:
            raise give_up()
        delay = min(self._retry.backoff_s(self._failures), self._retry.max_delay_s)
        self._failures += 1
        return delay


def read_timeout_until(deadline: float | None) -> float:
    """A connection's read timeout: the keep-alive allowance, or less when a wait ends sooner."""
    if deadline is None:
        return STREAM_READ_TIMEOUT_S
    return max(0.1, min(STREAM_READ_TIMEOUT_S, deadline - time.monotonic()))


def check_deadline(deadline: float | None, job_id: str) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline). Raises WaitTimeoutError once it passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise WaitTimeoutError(f"job {job_id} did not finish in time (it keeps running)", code=WAIT_TIMEOUT)
    return left
