"""Server-Sent Events for one job: its public view each time it changes, until it finishes.

The stream polls the store (a read of one key) every ``poll_s``; events are ``status`` when the
status changed and ``progress`` otherwise, each carrying the JobPublic JSON and a sequence id.
"""

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from core.jobs.store import JobStore
from service.views import JobViewer

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream


def format_event(event: str, event_id: int, data: str) -> str:
    return f"event: {event}\nid: {event_id}\ndata: {data}\n\n"


async def job_events(
    store: JobStore, viewer: JobViewer, job_id: str, *, owner: str, poll_s: float
) -> AsyncIterator[str]:
    """Yield SSE frames for ``job_id`` until it reaches a terminal status."""
    last_payload, last_status, event_id, last_write = None, None, 0, time.monotonic()
    while True:
        job = await run_in_threadpool(store.get, job_id, owner=owner)
        view = await run_in_threadpool(viewer.show, job)
        payload = view.model_dump_json()
        if payload != last_payload:
            event_id += 1
            yield format_event("status" if job.status != last_status else "progress", event_id, payload)
            last_payload, last_status, last_write = payload, job.status, time.monotonic()
        if job.status.is_terminal:
            return
        if time.monotonic() - last_write >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        await asyncio.sleep(poll_s)
