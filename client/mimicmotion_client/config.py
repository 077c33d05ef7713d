"""What both clients are configured with: the gateway's URL and key (arguments, else the environment),
timeouts, retries, upload limits; and how a ``RequestSpec`` becomes httpx arguments."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from mimicmotion_client.protocol import DEFAULT_MULTIPART_THRESHOLD_BYTES, Reply, RequestSpec, parse_body
from mimicmotion_client.retry import RetryPolicy
from mimicmotion_client.version import __version__

URL_ENV, API_KEY_ENV = "MIMICMOTION_URL", "MIMICMOTION_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"  # where `mimicmotion up` listens
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str | None
    timeout_s: float
    retry: RetryPolicy
    multipart_threshold_bytes: int
    max_upload_bytes: int | None
    user_agent: str = field(default=f"mimicmotion-client/{__version__}")

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout_s: float,
        retry: RetryPolicy | None,
        multipart_threshold_bytes: int | None,
        max_upload_bytes: int | None,
    ) -> ClientConfig:
        url = base_url or os.environ.get(URL_ENV) or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        threshold = multipart_threshold_bytes
        if threshold is None:
            threshold = DEFAULT_MULTIPART_THRESHOLD_BYTES
        return cls(url.rstrip("/"), key, timeout_s, retry or RetryPolicy(), threshold, max_upload_bytes)

    def timeout(self, spec: RequestSpec) -> httpx.Timeout:
        read = spec.read_timeout_s if spec.read_timeout_s is not None else self.timeout_s
        return httpx.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s), read=read)

    def headers(self, spec: RequestSpec) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent, **spec.headers}
        if self.api_key and spec.authenticated:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if spec.content is not None:
            headers["Content-Length"] = str(spec.content.size_bytes)
        return headers

    def request_args(self, spec: RequestSpec) -> dict[str, Any]:
        """httpx keyword arguments for everything but the body (which each transport opens itself)."""
        args: dict[str, Any] = {"headers": self.headers(spec), "timeout": self.timeout(spec)}
        if spec.params:
            args["params"] = dict(spec.params)
        if spec.json is not None:
            args["json"] = spec.json
        return args


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@contextmanager
def opened_body(spec: RequestSpec, *, asynchronous: bool) -> Iterator[dict[str, Any]]:
    """httpx body arguments for one try of ``spec``, the file opened from its start (and closed after)."""
    source = spec.form_file or spec.content
    if source is None:
        yield {}
        return
    with source.opened() as file:
        if spec.form_file is not None:
            yield {"files": {"file": (source.filename, file, source.content_type)}}
        elif asynchronous:  # httpx's AsyncClient streams only async iterables (local reads stay synchronous)
            yield {"content": _async_chunks(source.chunks(file))}
        else:
            yield {"content": source.chunks(file)}


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def reply_of(response: httpx.Response) -> Reply:
    return Reply(response.status_code, lower_headers(response.headers), parse_body(response.content),
                 text=response.text[:300])  # fmt: skip
