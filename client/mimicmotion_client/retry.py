"""When to try a request again, and after how long: exponential backoff with jitter, ``Retry-After`` honoured.

Pure decisions (no I/O, no sleeping): the sync and async clients ask ``RetryPolicy`` and sleep themselves.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

from mimicmotion_client.errors import CONNECTION_ERROR, APIConnectionError
from mimicmotion_client.protocol import Reply, RequestSpec, check_reply

# 429 and 503 are what the gateway answers when it is busy or not ready (with Retry-After); 502 and 504
# come from a load balancer in front of it while it restarts.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_attempts`` tries of one request.

    The delay before try n+1 is ``base_delay_s * 2**n`` capped at ``max_delay_s``, drawn uniformly from its
    upper half (jitter, so many clients do not retry in lockstep), unless the answer carried ``Retry-After``,
    which wins (capped at ``max_retry_after_s``).

    Example:
        >>> Client(retry=RetryPolicy(max_attempts=8, base_delay_s=0.2))
        >>> Client(retry=RetryPolicy(max_attempts=1))  # never retry
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")

    def backoff_s(self, attempt: int) -> float:
        """The delay after failed try number ``attempt`` (0 for the first)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return float(ceiling * (0.5 + 0.5 * self.random()))

    def delay_after_status(self, attempt: int, status: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before retrying an answer with ``status``; None: do not retry (give it to the caller)."""
        if status not in RETRYABLE_STATUSES or attempt + 1 >= self.max_attempts:
            return None
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        return self.backoff_s(attempt)

    def delay_after_error(self, attempt: int) -> float | None:
        """Seconds to wait before retrying after no answer came back; None once the tries are used up."""
        return None if attempt + 1 >= self.max_attempts else self.backoff_s(attempt)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class Tries:
    """The tries of one request: each failure either gives a delay before the next try or raises."""

    def __init__(self, policy: RetryPolicy, spec: RequestSpec) -> None:
        self.policy, self.spec, self.attempt = policy, spec, 0
        self._delay: float | None = None

    def finished(self, reply: Reply) -> bool:
        """True when ``reply`` is the answer (raises if it is a final error); False: try again after ``delay``."""
        if reply.status in self.spec.ok:
            return True
        self._delay = self.policy.delay_after_status(self.attempt, reply.status, reply.headers)
        if self._delay is None:
            check_reply(self.spec, reply)  # raises
        return False

    def after_error(self, error: Exception) -> float:
        """Seconds before the next try after no answer came back; raises APIConnectionError once spent."""
        delay = self.policy.delay_after_error(self.attempt)
        self.attempt += 1
        if delay is None:
            where = self.spec.url.split("?")[0]  # a presigned URL's query is a credential: not in messages
            raise APIConnectionError(
                f"{self.spec.method} {where}: no answer after {self.attempt} tries ({type(error).__name__}: {error})",
                code=CONNECTION_ERROR,
            ) from error
        return delay

    def delay(self) -> float:
        """Seconds before the next try after an answer ``finished`` refused."""
        self.attempt += 1
        return self._delay or 0.0
