"""Routes for /jobs: create, read, list. Each handler parses, makes one core call, returns JobPublic."""

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from core.contract.records import Job
from core.jobs.idempotency import MAX_IDEMPOTENCY_KEY_LENGTH
from core.jobs.store import JobStore
from service import cancellation, removal, submission
from service.deps import JobViewerDep, OwnerDep, SettingsDep, StorageDep, StoreDep, TaskSenderDep
from service.errors import error_responses
from service.prefer import MAX_WAIT_S, parse_prefer_wait
from service.schemas import JobCreate, JobList, JobPublic
from service.sse import job_events

JobId = Annotated[str, Path(max_length=64, description="The job's id.")]
IDEMPOTENCY_HEADER = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
    description="Same key and same body within 24 h return the same job; a different body is a 409.",
)

LAST_EVENT_ID_HEADER = Header(
    alias="Last-Event-ID",
    max_length=64,
    description="The id of the last event received: the stream resumes after it, without repeating that state.",
)
PREFER_HEADER = Header(
    alias="Prefer",
    max_length=256,
    description=f"wait=N (RFC 7240): hold the response until the job finishes or N seconds pass (at most "
    f"{MAX_WAIT_S}); 200 when it finished, else 202. Preference-Applied says the N used.",
)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=error_responses(401))


_LOCATION = {"Location": {"description": "/jobs/{id} of the new job", "schema": {"type": "string"}}}
_APPLIED = {
    "Preference-Applied": {"description": "wait=N, when Prefer: wait was honoured", "schema": {"type": "string"}}
}


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    summary="Submit an animation job",
    responses={
        200: {"model": JobPublic, "description": "With Prefer: wait, the job finished in time",
              "headers": {**_LOCATION, **_APPLIED}},
        202: {"headers": {**_LOCATION, **_APPLIED}},
        **error_responses(400, 409, 415, 422, 429, 503),
    },
)  # fmt: skip
async def create_job(
    body: JobCreate,
    owner: OwnerDep,
    store: StoreDep,
    sender: TaskSenderDep,
    settings: SettingsDep,
    viewer: JobViewerDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_HEADER] = None,
    prefer: Annotated[str | None, PREFER_HEADER] = None,
) -> JobPublic:
    job = await run_in_threadpool(
        submission.create_job, store, sender, body, owner=owner, settings=settings, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"/jobs/{job.id}"
    wait_s = parse_prefer_wait(prefer)
    if wait_s is not None:
        job = await _wait_until_finished(store, job, wait_s, poll_s=request.app.state.sse_poll_s)
        response.headers["Preference-Applied"] = f"wait={wait_s}"
        if job.status.is_terminal:
            response.status_code = 200
    return await run_in_threadpool(viewer.show, job)


async def _wait_until_finished(store: JobStore, job: Job, wait_s: int, *, poll_s: float) -> Job:
    """The job once it is terminal, or as it is when ``wait_s`` has passed (the event loop stays free)."""
    deadline = time.monotonic() + wait_s
    while not job.status.is_terminal and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(poll_s, left))
        job = await run_in_threadpool(store.get, job.id)
    return job


@router.get("/{job_id}", response_model=JobPublic, summary="Get a job", responses=error_responses(404))
def get_job(job_id: JobId, owner: OwnerDep, store: StoreDep, viewer: JobViewerDep) -> JobPublic:
    return viewer.show(store.get(job_id, owner=owner))


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a queued or running job",
    responses=error_responses(404, 409),
)
def cancel_job(job_id: JobId, owner: OwnerDep, store: StoreDep, viewer: JobViewerDep) -> JobPublic:
    return viewer.show(cancellation.cancel_job(store, job_id, owner=owner))


@router.delete(
    "/{job_id}",
    response_model=JobPublic,
    summary="Delete a job's data",
    description="Cancels the job if it is not finished and deletes its stored files (the result and pose videos); "
    "a small record stays, with data_removed_at and no output. Old result URLs stop working. Idempotent.",
    responses=error_responses(404, 503),
)
def delete_job(job_id: JobId, owner: OwnerDep, store: StoreDep, storage: StorageDep, viewer: JobViewerDep) -> JobPublic:
    return viewer.show(removal.remove_job_data(store, storage, job_id, owner=owner))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    summary="Server-Sent Events of the job's status and progress, until it finishes",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}, **error_responses(404)},
)
def stream_job_events(
    job_id: JobId,
    owner: OwnerDep,
    store: StoreDep,
    viewer: JobViewerDep,
    request: Request,
    last_event_id: Annotated[str | None, LAST_EVENT_ID_HEADER] = None,
) -> StreamingResponse:
    store.get(job_id, owner=owner)  # an unknown job is a JSON 404, not an empty stream
    poll_s = request.app.state.sse_poll_s
    events = job_events(store, viewer, job_id, owner=owner, poll_s=poll_s, last_event_id=last_event_id)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("", response_model=JobList, summary="List your jobs, newest first", responses=error_responses(422))
def list_jobs(
    owner: OwnerDep,
    store: StoreDep,
    viewer: JobViewerDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
    cursor: Annotated[str | None, Query(max_length=40, description="next_cursor of the previous page.")] = None,
) -> JobList:
    return viewer.show_page(store.list_jobs(owner, limit=limit, cursor=cursor))
