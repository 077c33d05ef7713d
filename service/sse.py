"""Server-Sent Events for one job: its public view each time it changes, until it finishes.

The stream polls the store (a read of one key) every ``poll_s``; events are ``status`` when the
status changed and ``progress`` otherwise, each carrying the JobPublic JSON. Event ids are
``{sequence}-{fingerprint of the view}``: a client that reconnects with ``Last-Event-ID`` gets the
numbering continued and no repeat of the state it already has, so reconnecting to a finished job
it saw finish ends at once. Every event carries the whole job, so no history needs replaying.
"""

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from core.contract.ascii_numbers import parse_ascii_int
from core.jobs.store import JobStore
from service.schemas import JobPublic
from service.views import JobViewer

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream


def format_event(event: str, event_id: str, data: str) -> str:
    return f"event: {event}\nid: {event_id}\ndata: {data}\n\n"


def fingerprint(view: JobPublic) -> str:
    """What the client has seen. URLs are minted anew on every read, so only their paths count (they name the
    stored file: a new preview is an event of its own); the output's URLs are left out."""
    seen = view.model_copy(update={name: _without_query(getattr(view, name)) for name in _LIVE_URLS})
    return hashlib.sha256(seen.model_dump_json(exclude={"output"}).encode()).hexdigest()[:12]


_LIVE_URLS = ("pose_video_url", "preview_url")


def _without_query(url: str | None) -> str | None:
    return url.split("?", 1)[0] if url else url


def parse_last_event_id(value: str | None) -> tuple[int, str | None]:
    """(sequence, fingerprint) of an id this stream sent; (0, None) for anything else."""
    sequence_text, _, seen = (value or "").strip().partition("-")
    sequence = parse_ascii_int(sequence_text, max_digits=11)
    return (sequence, seen or None) if sequence is not None else (0, None)


async def job_events(
    store: JobStore, viewer: JobViewer, job_id: str, *, owner: str, poll_s: float, last_event_id: str | None = None
) -> AsyncIterator[str]:
    """Yield SSE frames for ``job_id`` until it reaches a terminal status (at once if the client saw it)."""
    sequence, last_print = parse_last_event_id(last_event_id)
    last_status, last_write = None, time.monotonic()
    while True:
        job = await run_in_threadpool(store.get, job_id, owner=owner)
        view = await run_in_threadpool(viewer.show, job)
        current = fingerprint(view)
        if current != last_print:
            sequence += 1
            kind = "status" if job.status != last_status else "progress"
            yield format_event(kind, f"{sequence}-{current}", view.model_dump_json())
            last_print, last_write = current, time.monotonic()
        last_status = job.status
        if job.status.is_terminal:
            return
        if time.monotonic() - last_write >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        await asyncio.sleep(poll_s)
