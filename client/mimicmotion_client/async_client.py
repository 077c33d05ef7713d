"""``AsyncClient``: ``Client`` on ``httpx.AsyncClient`` (asyncio). The same flows, the same retries; the logic
both share lives in ``protocol``, ``sse`` and ``retry``, so this file holds only the sending.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, TypeVar

import httpx

from mimicmotion_client import protocol
from mimicmotion_client.config import ClientConfig, lower_headers, opened_body, reply_of
from mimicmotion_client.errors import JobFailedError
from mimicmotion_client.protocol import DownloadFile, Flow, InputValue, JobRequest, Reply, RequestSpec, parse_body
from mimicmotion_client.retry import RetryPolicy, Tries
from mimicmotion_client.sources import FileInput, source_of
from mimicmotion_client.sse import JobEventStream, check_deadline, read_timeout_until
from mimicmotion_client.types import Event, Job, JobPage, ModelInfo, Upload

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of one MimicMotion gateway: ``Client``'s methods, awaited.

    Args:
        base_url: the gateway, e.g. ``https://mimicmotion.example.com``; default ``$MIMICMOTION_URL``, else
            ``http://127.0.0.1:8000`` (``mimicmotion up``).
        api_key: sent as ``Authorization: Bearer``; default ``$MIMICMOTION_API_KEY``.
        timeout_s: seconds allowed per request (event streams and ``wait=`` submits allow more).
        retry: how 429, 502, 503, 504 and lost connections are retried (default: 5 tries, backoff from 0.5 s).
        multipart_threshold_bytes: files above this (default 16 MiB) go straight to storage (presigned PUT).
        max_upload_bytes: the gateway's upload limit, if you know it: a larger file is refused before sending.
        trust_env: use proxy settings from the environment (httpx's default).

    Example:
        >>> from mimicmotion_client import AsyncClient
        >>> async with AsyncClient("https://mimicmotion.example.com", api_key="...") as client:
        ...     job = await client.run("person.png", "dance.mp4", params={"seed": 42})
        ...     await client.download(job, "result.mp4")
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        multipart_threshold_bytes: int | None = None,
        max_upload_bytes: int | None = None,
        trust_env: bool = True,
    ) -> None:
        self._config = ClientConfig.resolve(
            base_url, api_key, timeout_s=timeout_s, retry=retry,
            multipart_threshold_bytes=multipart_threshold_bytes, max_upload_bytes=max_upload_bytes,
        )  # fmt: skip
        self._http = httpx.AsyncClient(base_url=self._config.base_url, trust_env=trust_env)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    # Uploads

    async def upload(self, file: FileInput, *, filename: str | None = None, content_type: str | None = None) -> Upload:
        """Store a local file with the gateway; pass the Upload (or its ``url``) to ``submit``.

        ``file`` is a path, bytes or a binary file object. Up to ``multipart_threshold_bytes`` it is one
        multipart POST; above, the bytes go straight to storage (a presigned PUT) and the gateway checks them.

        Example:
            >>> upload = await client.upload("person.png")
            >>> upload.url
            'upload://3f2b...'
        """
        source = source_of(file, name="file", filename=filename, content_type=content_type)
        return await self._run(protocol.upload(source, **self._upload_limits()))

    async def get_upload(self, upload_id: str) -> Upload:
        return await self._run(protocol.get_upload(upload_id))

    async def delete_upload(self, upload_id: str) -> None:
        """Delete an upload (idempotent); jobs already using it keep it until they end."""
        await self._run(protocol.delete_upload(upload_id))

    # Models

    async def models(self) -> list[ModelInfo]:
        """The models the gateway serves, each with its params schema and how many live workers serve it
        (``ModelInfo.default`` marks the one a submit without ``model`` gets).

        Example:
            >>> [model.name for model in await client.models()]
            ['mimicmotion-1.1', 'wan2.2-animate']
        """
        return await self._run(protocol.list_models())

    # Jobs

    async def submit(
        self,
        image: InputValue,
        video: InputValue,
        params: dict[str, Any] | None = None,
        *,
        model: str | None = None,
        webhook_url: str | None = None,
        webhook_events: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        timeout_s: int | None = None,
        wait: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create a job; returns it as the gateway answered (``queued``, unless ``wait`` saw it finish).

        Args:
            image, video: an http(s) URL, an ``upload://`` URL or Upload, or something to upload first: a path
                (``pathlib.Path``, or a str naming an existing file), bytes or a binary file object.
            params: generation parameters of the job's model (``seed``, ``num_inference_steps``, ``resolution``
                ...; ``models()`` has each model's schema); the gateway answers 422 naming a field it refuses.
            model: one of ``models()``' names (``wan2.2-animate`` ...); None: the gateway's default model.
            timeout_s: the job's own time limit (queue time included), not this request's.
            wait: ``Prefer: wait=N`` (N <= 60): the gateway answers when the job ends or N seconds pass.
            idempotency_key: default a fresh uuid4, the same for every retry of this call, so a retried
                submit never makes two jobs.

        Example:
            >>> job = await client.submit("https://example.com/person.png", Path("dance.mp4"), {"seed": 7})
            >>> job.status
            'queued'
        """
        request = JobRequest(
            params, webhook_url, webhook_events, metadata, timeout_s, wait, idempotency_key, model=model
        )
        return await self._run(
            protocol.submit(image, video, request, read_timeout_s=self._config.timeout_s, **self._upload_limits())
        )

    async def get(self, job_id: str) -> Job:
        """The job now (its output URLs freshly signed)."""
        return await self._run(protocol.get_job(job_id))

    async def list_page(self, *, limit: int = 20, cursor: str | None = None) -> JobPage:
        """One page of your jobs, newest first."""
        return await self._run(protocol.list_page(limit=limit, cursor=cursor))

    async def list(self, *, limit: int = 20) -> AsyncIterator[Job]:
        """All your jobs, newest first, fetching ``limit`` per page as the iteration goes.

        Example:
            >>> failed = [job.id async for job in client.list() if job.status == "failed"]
        """
        cursor: str | None = None
        while True:
            page = await self.list_page(limit=limit, cursor=cursor)
            for job in page.data:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (running work stops between denoising steps)."""
        return await self._run(protocol.cancel_job(job_id))

    async def delete(self, job_id: str) -> Job:
        """Cancel the job if unfinished and delete its stored results; the record keeps ``data_removed_at``."""
        return await self._run(protocol.delete_job(job_id))

    async def stream(
        self, job_id: str, *, last_event_id: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[Event]:
        """The job's events (its whole state at each change) until it is terminal.

        A dropped connection is reopened with ``Last-Event-ID``, so no state is missed or repeated.

        Example:
            >>> async for event in client.stream(job.id):
            ...     print(event.type, event.job.status, event.job.progress)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        events = JobEventStream(job_id, retry=self._config.retry, last_event_id=last_event_id)
        while not events.done:
            spec = events.request(read_timeout_s=read_timeout_until(deadline))
            try:
                async with self._http.stream(spec.method, spec.url, **self._config.request_args(spec)) as response:
                    if response.status_code != 200:
                        await response.aread()
                        delay = events.refused(
                            response.status_code, lower_headers(response.headers), parse_body(response.content),
                            response.text[:300],
                        )  # fmt: skip
                    else:
                        async for line in response.aiter_lines():
                            event = events.feed(line)
                            if event is not None:
                                yield event
                            if events.done:  # the terminal event: no need to wait for the server to close
                                break
                            check_deadline(deadline, job_id)
                        delay = events.ended()
            except httpx.TransportError as error:
                delay = events.dropped(error)
            if events.done:
                return
            left = check_deadline(deadline, job_id)
            if delay > 0:
                await asyncio.sleep(delay if left is None else min(delay, left))

    async def wait(
        self, job_id: str, on_progress: Callable[[Job], object] | None = None, timeout: float | None = None
    ) -> Job:
        """Follow the job's events until it is terminal; returns it (whatever its status).

        Args:
            on_progress: called with the job at every event (status changes and progress steps); a coroutine
                function is awaited.
            timeout: seconds; WaitTimeoutError after that (the job keeps running).

        Example:
            >>> job = await client.wait(job.id, on_progress=lambda job: print(job.progress))
            >>> job.status
            'succeeded'
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            last: Job | None = None
            left = check_deadline(deadline, job_id)
            async for event in self.stream(job_id, timeout=left):
                last = event.job
                if on_progress is not None and inspect.isawaitable(called := on_progress(event.job)):
                    await called
            if last is None or not last.is_terminal:  # the stream closed on a state seen before: look
                last = await self.get(job_id)
            if last.is_terminal:
                return last

    async def run(
        self,
        image: InputValue,
        video: InputValue,
        params: dict[str, Any] | None = None,
        *,
        model: str | None = None,
        on_progress: Callable[[Job], object] | None = None,
        timeout: float | None = None,
        **submit_options: Any,
    ) -> Job:
        """Upload what is local, submit, wait: the succeeded job (JobFailedError if it failed or was canceled).

        Example:
            >>> job = await client.run("person.png", "dance.mp4", {"num_inference_steps": 25})
            >>> await client.download(job, "result.mp4")
        """
        job = await self.submit(image, video, params, model=model, **submit_options)
        if not job.is_terminal:
            job = await self.wait(job.id, on_progress=on_progress, timeout=timeout)
        if job.status != "succeeded":
            raise JobFailedError(job)
        return job

    async def download(self, job: Job | str, path: str | os.PathLike[str], *, what: str = "video") -> Path:
        """Save a succeeded job's ``video`` (checked against its size and SHA-256) or ``pose_video`` to ``path``.

        Example:
            >>> await client.download(job.id, "out/result.mp4")
            PosixPath('out/result.mp4')
        """
        return await self._run(protocol.download(job, path, what=what))

    # Sending

    def _upload_limits(self) -> dict[str, Any]:
        config = self._config
        return {
            "multipart_threshold_bytes": config.multipart_threshold_bytes, "max_upload_bytes": config.max_upload_bytes
        }  # fmt: skip

    async def _run(self, flow: Flow[T]) -> T:
        try:
            spec = next(flow)
            while True:
                spec = flow.send(await self._send(spec))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _send(self, spec: RequestSpec) -> Reply:
        tries = Tries(self._config.retry, spec)
        while True:
            try:
                reply = await self._exchange(spec)
            except httpx.TransportError as error:
                await asyncio.sleep(tries.after_error(error))
                continue
            if tries.finished(reply):
                return reply
            await asyncio.sleep(tries.delay())

    async def _exchange(self, spec: RequestSpec) -> Reply:
        args = self._config.request_args(spec)
        with opened_body(spec, asynchronous=True) as body:
            if spec.download_to is None:
                return reply_of(await self._http.request(spec.method, spec.url, **args, **body))
            async with self._http.stream(spec.method, spec.url, **args) as response:
                if response.status_code != 200:
                    await response.aread()
                    return reply_of(response)
                with DownloadFile(spec.download_to) as file:
                    async for chunk in response.aiter_bytes():
                        file.write(chunk)
                    return file.reply(response.status_code, lower_headers(response.headers))
