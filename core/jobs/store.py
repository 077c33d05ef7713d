"""JobStore: job records in Redis with guarded, atomic transitions, their indexes, leases and status counts.

Every write that depends on the current state runs in a WATCH/MULTI transaction, so a
transition out of a terminal state, or a second claim of a job a live worker holds, is refused
even when two processes race. The keys (job, seq, queued, running, owner, lease, status_counts) are
listed in ``keys.py``; heartbeats, stage statistics, deliveries and idempotency records have their own
modules on the same ``KeyedRedis``.

Retention: a job's record expires ``job_retention_s`` after it reaches a terminal state (set in the
same transaction); a queued or running job never expires. Its id leaves the owner's set when a
listing finds the record gone. The status counters are totals for /metrics and never expire.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import redis

from core.contract.ascii_numbers import parse_ascii_int
from core.contract.records import DEFAULT_JOB_RETENTION_S, Job, JobError, JobStatus, utc_now
from core.contract.transitions import InvalidTransitionError, check_transition
from core.errors import InvalidCursorError, JobNotFoundError, QueueLimitError
from core.jobs.keys import KeyedRedis

if TYPE_CHECKING:
    from core.settings import Settings

_MAX_TXN_RETRIES = 50
# Extends the lease only while ``worker`` holds it, in one atomic step: the holder's lease thread and its
# denoising steps renew concurrently, and an optimistic WATCH loop could lose every race and read a live
# lease as lost (the job would then stop as taken over).
_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  return 1
end
return 0
"""


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobStore:
    """Job records, their indexes and leases, in the Redis of ``db``."""

    def __init__(self, db: KeyedRedis) -> None:
        self.db = db
        self._redis = db.client
        self._keys = db.keys
        self._renew_lease = self._redis.register_script(_RENEW_LEASE)

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout_s: float = 5.0, job_retention_s: int = DEFAULT_JOB_RETENTION_S
    ) -> "JobStore":
        """A store on its own client (``KeyedRedis.from_url``), for callers that need only the store."""
        return cls(KeyedRedis.from_url(url, socket_timeout_s=socket_timeout_s, job_retention_s=job_retention_s))

    @classmethod
    def from_settings(cls, settings: "Settings") -> "JobStore":
        """The process's store: ``KeyedRedis.from_settings`` (the URL or the sentinels, the retention)."""
        return cls(KeyedRedis.from_settings(settings))

    # Reads
    def ping(self) -> None:
        self._redis.ping()

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job; with ``owner``, another owner's job is reported as not found."""
        raw = self._redis.get(self._keys.job(job_id))
        if raw is None:
            raise JobNotFoundError(f"no job {job_id}")
        job = Job.model_validate_json(raw)
        if owner is not None and job.owner != owner:
            raise JobNotFoundError(f"no job {job_id}")
        return job

    def list_jobs(self, owner: str, *, limit: int = 20, cursor: str | None = None) -> JobPage:
        """The owner's jobs, newest first; ``cursor`` is the ``next_cursor`` of the previous page.

        Ids whose record expired are skipped and removed from the owner's set, so a page may hold
        fewer than ``limit`` jobs; ``next_cursor`` still continues after the last id read.
        """
        # ASCII digits only: "²" or "١٢" pass str.isdigit() but are no score Redis reads (a 503 before).
        if cursor is not None and parse_ascii_int(cursor) is None:
            raise InvalidCursorError(f"cursor {cursor[:40]!r} is not one this API returned")
        max_score = f"({cursor}" if cursor else "+inf"
        ids_with_seq = cast(
            list[tuple[str, float]],
            self._redis.zrevrangebyscore(
                self._keys.owner(owner), max_score, "-inf", start=0, num=limit + 1, withscores=True
            ),
        )
        page, more = ids_with_seq[:limit], len(ids_with_seq) > limit
        raws = cast(list[str | None], self._redis.mget([self._keys.job(job_id) for job_id, _ in page])) if page else []
        jobs = [Job.model_validate_json(raw) for raw in raws if raw is not None]
        expired = [job_id for (job_id, _), raw in zip(page, raws, strict=True) if raw is None]
        if expired:
            self._redis.zrem(self._keys.owner(owner), *expired)
        next_cursor = str(int(page[-1][1])) if more and page else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    def queue_position(self, job_id: str) -> int | None:
        """Jobs ahead of this one in the queue (0: next to run); None when it is not queued."""
        rank = cast(int | None, self._redis.zrank(self._keys.queued, job_id))
        return rank

    def queued_ids(self, limit: int) -> list[str]:
        """The first ``limit`` queued ids in queue order; read-only (a worker prepares the next job ahead)."""
        return cast(list[str], self._redis.zrange(self._keys.queued, 0, limit - 1))

    def queue_length(self) -> int:
        return cast(int, self._redis.zcard(self._keys.queued))

    def running_ids(self) -> list[str]:
        return sorted(cast(set[str], self._redis.smembers(self._keys.running)))

    def is_held(self, job_id: str) -> bool:
        """Whether a live worker holds the job's lease."""
        return bool(self._redis.exists(self._keys.lease(job_id)))

    # Writes
    def create(self, job: Job, *, max_queued_per_owner: int | None = None) -> Job:
        """Store a new queued job.

        Raises:
            QueueLimitError: the owner already has ``max_queued_per_owner`` queued jobs (checked and
                created in one transaction, so concurrent requests cannot overshoot the limit).
        """
        if job.status is not JobStatus.queued:
            raise InvalidTransitionError(f"a new job must be queued, not {job.status.value}")
        seq = int(self._redis.incr(self._keys.seq))
        owner_key = self._keys.owner(job.owner)
        for _ in range(_MAX_TXN_RETRIES):
            with self._redis.pipeline() as pipe:
                try:
                    pipe.watch(owner_key, self._keys.queued)
                    if max_queued_per_owner is not None:
                        queued = cast(int, pipe.zintercard(2, [owner_key, self._keys.queued]))
                        if queued >= max_queued_per_owner:
                            raise QueueLimitError(
                                f"you have {queued} queued jobs; the limit per API key is {max_queued_per_owner}"
                            )
                    pipe.multi()
                    pipe.set(self._keys.job(job.id), job.model_dump_json(), nx=True)
                    pipe.zadd(self._keys.queued, {job.id: seq})
                    pipe.zadd(owner_key, {job.id: seq})
                    pipe.hincrby(self._keys.status_counts, JobStatus.queued.value, 1)
                    created, *_ = pipe.execute()
                except redis.WatchError:
                    continue
            if not created:
                raise InvalidTransitionError(f"job {job.id} exists already")
            return job
        raise RuntimeError(f"job {job.id}: too much contention, gave up after {_MAX_TXN_RETRIES} tries")

    def count_queued(self, owner: str) -> int:
        """The owner's queued jobs (Redis >= 7: ZINTERCARD)."""
        return cast(int, self._redis.zintercard(2, [self._keys.owner(owner), self._keys.queued]))

    def claim(self, job_id: str, worker: str, *, lease_s: int) -> Job | None:
        """Take a job for ``worker``: queued -> running, or take over a running job whose lease lapsed.

        Returns None (do nothing) when the job is finished or a live worker holds it, which is
        what makes redelivered and duplicated task messages harmless.
        """

        def claim_job(job: Job, pipe: Any) -> Job | None:
            if job.status is JobStatus.running and pipe.exists(self._keys.lease(job_id)):
                return None
            if job.status not in (JobStatus.queued, JobStatus.running):
                return None
            return job.model_copy(
                update={
                    "status": JobStatus.running,
                    "started_at": utc_now(),
                    "worker": worker,
                    "attempts": job.attempts + 1,
                    "progress": None,
                    "pose_video_key": None,  # the new attempt shows its own
                    "preview_key": None,
                    "resumed_from_step": None,  # set again if this attempt resumes from a checkpoint
                }
            )

        return self._update(job_id, claim_job, lease=(worker, lease_s))

    def reap_lapsed(self, job_id: str, *, max_attempts: int) -> Job | None:
        """Hand back a running job whose worker stopped renewing its lease.

        The job goes back to the queue (front) while it has attempts left, else it fails with
        ``worker_lost``. Returns the changed job, or None when the job is not running or its lease
        is live (a concurrent reaper, or the worker came back, got there first).
        """

        def reap(job: Job, pipe: Any) -> Job | None:
            if job.status is not JobStatus.running or pipe.exists(self._keys.lease(job_id)):
                return None
            if job.attempts < max_attempts:
                return job.model_copy(
                    update={"status": JobStatus.queued, "worker": None, "progress": None, "started_at": None}
                )
            error = JobError(
                code="worker_lost",
                message=f"the worker running this job stopped responding {job.attempts} times; "
                "it was not retried again (a job that crashes workers, e.g. out of GPU memory, would loop)",
            )
            return job.model_copy(update={"status": JobStatus.failed, "error": error, "finished_at": utc_now()})

        return self._update(job_id, reap)

    def renew_lease(self, job_id: str, worker: str, *, lease_s: int) -> bool:
        """Extend the lease if ``worker`` still holds it; False means the job was taken or finished."""
        return bool(self._renew_lease(keys=[self._keys.lease(job_id)], args=[worker, lease_s]))

    def update_running(self, job_id: str, worker: str, **changes: Any) -> Job | None:
        """Change fields (progress, timings) of a job ``worker`` is running; None if it no longer is."""

        def apply(job: Job, _: Any) -> Job | None:
            if job.status is not JobStatus.running or job.worker != worker:
                return None
            return job.model_copy(update=changes)

        return self._update(job_id, apply)

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        worker: str | None = None,
        expected: Iterable[JobStatus] | None = None,
        **changes: Any,
    ) -> Job:
        """Move a job to ``target`` atomically, setting ``changes`` with it.

        Args:
            worker: when given, the job must be running on this worker (a fencing check, so a
                worker that lost its lease cannot finish a job another worker took over).
            expected: statuses the caller expects the job to be in; others are refused.

        Raises:
            InvalidTransitionError: the state machine, ``expected`` or ``worker`` forbids it.
        """
        allowed_from = None if expected is None else frozenset(expected)

        def apply(job: Job, _: Any) -> Job:
            if allowed_from is not None and job.status not in allowed_from:
                raise InvalidTransitionError(f"job {job_id} is {job.status.value}")
            if worker is not None and (job.status is not JobStatus.running or job.worker != worker):
                raise InvalidTransitionError(f"job {job_id} is not running on {worker}")
            check_transition(job.status, target)
            update: dict[str, Any] = {"status": target, **changes}
            if target.is_terminal:
                update.setdefault("finished_at", utc_now())
            if target is JobStatus.queued:
                update.update(worker=None, progress=None, started_at=None)
            return job.model_copy(update=update)

        job = self._update(job_id, apply)
        assert job is not None
        return job

    def mark_data_removed(self, job_id: str, *, owner: str) -> Job:
        """Record that the owner's finished job has its files deleted: ``data_removed_at`` set, ``output`` gone.

        Idempotent: a repeat keeps the first time. Raises InvalidTransitionError for an unfinished job.
        """

        def apply(job: Job, _: Any) -> Job:
            if job.owner != owner:
                raise JobNotFoundError(f"no job {job_id}")
            if not job.status.is_terminal:
                raise InvalidTransitionError(f"job {job_id} is {job.status.value}; cancel it first")
            removed = {"output": None, "pose_video_key": None, "preview_key": None}
            return job.model_copy(update={**removed, "data_removed_at": job.data_removed_at or utc_now()})

        job = self._update(job_id, apply)
        assert job is not None
        return job

    def _update(
        self,
        job_id: str,
        change: Callable[[Job, Any], Job | None],
        *,
        lease: tuple[str, int] | None = None,
    ) -> Job | None:
        """Read-check-write one job in a WATCH transaction, keeping the index sets in step."""
        key = self._keys.job(job_id)
        for _ in range(_MAX_TXN_RETRIES):
            with self._redis.pipeline() as pipe:
                try:
                    pipe.watch(key, self._keys.lease(job_id))
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFoundError(f"no job {job_id}")
                    before = Job.model_validate_json(raw)
                    after = change(before, pipe)
                    if after is None:
                        return None
                    pipe.multi()
                    # A finished job is kept job_retention_s; SET without ex clears any TTL, so a queued
                    # or running job never expires however long the queue.
                    retention_s = self.db.job_retention_s if after.status.is_terminal else None
                    pipe.set(key, after.model_dump_json(), ex=retention_s)
                    self._index(pipe, after)
                    if after.status is not before.status:
                        pipe.hincrby(self._keys.status_counts, before.status.value, -1)
                        pipe.hincrby(self._keys.status_counts, after.status.value, 1)
                        if after.status is JobStatus.failed and after.error is not None:
                            pipe.hincrby(self._keys.failure_codes, after.error.code, 1)
                    if lease is not None:
                        pipe.set(self._keys.lease(job_id), lease[0], ex=lease[1])
                    elif after.status is not JobStatus.running:
                        pipe.delete(self._keys.lease(job_id))
                    pipe.execute()
                    return after
                except redis.WatchError:
                    continue
        raise RuntimeError(f"job {job_id}: too much contention, gave up after {_MAX_TXN_RETRIES} tries")

    def _index(self, pipe: Any, job: Job) -> None:
        if job.status is JobStatus.queued:
            # A re-queued job (its worker was lost) goes to the front: it has waited its turn once.
            pipe.zadd(self._keys.queued, {job.id: 0}, nx=True)
        else:
            pipe.zrem(self._keys.queued, job.id)
        if job.status is JobStatus.running:
            pipe.sadd(self._keys.running, job.id)
        else:
            pipe.srem(self._keys.running, job.id)

    def status_counts(self) -> dict[JobStatus, int]:
        raw = cast(dict[str, str], self._redis.hgetall(self._keys.status_counts))
        return {status: int(raw.get(status.value, 0)) for status in JobStatus}

    def failure_counts(self) -> dict[str, int]:
        """Failed jobs per ``error.code`` since the store began (for /metrics)."""
        raw = cast(dict[str, str], self._redis.hgetall(self._keys.failure_codes))
        return {code: int(count) for code, count in raw.items()}

    def oldest_queued_created_at(self) -> datetime | None:
        """When the job at the head of the queue was created (None for an empty queue)."""
        head = cast(list[str], self._redis.zrange(self._keys.queued, 0, 0))
        if not head:
            return None
        try:
            return self.get(head[0]).created_at
        except JobNotFoundError:
            return None
