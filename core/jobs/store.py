"""JobStore: job records in Redis with guarded, atomic transitions.

Every write that depends on the current state runs in a WATCH/MULTI transaction, so a
transition out of a terminal state, or a second claim of a job a live worker holds, is refused
even when two processes race. Keys (prefix ``mm``):

- ``mm:job:{id}``: the Job as JSON
- ``mm:seq``: counter giving each job a creation sequence number
- ``mm:queued``: sorted set of queued ids by sequence (queue position = rank)
- ``mm:running``: set of running ids (for the reaper and metrics)
- ``mm:owner:{owner}``: sorted set of the owner's ids by sequence (listing, newest first)
- ``mm:lease:{id}``: the worker holding a running job; expires unless renewed
- ``mm:worker:{name}``: a worker's heartbeat; expires when the worker is gone
- ``mm:status_counts``: jobs per status; ``mm:stage_seconds:{stage}``: histogram of stage times

Retention: a job's record expires ``job_retention_s`` after it reaches a terminal state (set in the
same transaction); a queued or running job never expires. Its id leaves ``mm:owner:{owner}`` when a
listing finds the record gone. The counters and histograms are totals for /metrics and never expire.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis

from core.contract.records import Job, JobError, JobStatus, utc_now
from core.contract.transitions import InvalidTransitionError, check_transition
from core.errors import JobNotFoundError, MimicMotionError, QueueLimitError

_MAX_TXN_RETRIES = 50
DEFAULT_JOB_RETENTION_S = 7 * 24 * 3600  # the default of Settings.job_retention_s
# Histogram buckets for stage durations, in seconds: from sub-second stages to hour-long denoising.
STAGE_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class StageHistogram:
    bucket_counts: list[int]  # per STAGE_BUCKETS_S bound plus +Inf, not cumulative
    sum_s: float
    count: int


class InvalidCursorError(MimicMotionError):
    code = "invalid_cursor"


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobStore:
    """Job records and worker heartbeats in one Redis database."""

    def __init__(
        self, client: redis.Redis, prefix: str = "mm", *, job_retention_s: int = DEFAULT_JOB_RETENTION_S
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.job_retention_s = job_retention_s  # a finished job's record (and its deliveries) is kept this long

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout_s: float = 5.0, job_retention_s: int = DEFAULT_JOB_RETENTION_S
    ) -> "JobStore":
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        return cls(client, job_retention_s=job_retention_s)

    # Keys
    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _lease_key(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    @property
    def _queued_key(self) -> str:
        return f"{self.prefix}:queued"

    @property
    def _running_key(self) -> str:
        return f"{self.prefix}:running"

    @property
    def _status_counts_key(self) -> str:
        return f"{self.prefix}:status_counts"

    # Reads
    def ping(self) -> None:
        self.redis.ping()

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job; with ``owner``, another owner's job is reported as not found."""
        raw = self.redis.get(self._job_key(job_id))
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
        if cursor is not None and not cursor.isdigit():
            raise InvalidCursorError(f"cursor {cursor[:40]!r} is not one this API returned")
        max_score = f"({cursor}" if cursor else "+inf"
        ids_with_seq = cast(
            list[tuple[str, float]],
            self.redis.zrevrangebyscore(
                self._owner_key(owner), max_score, "-inf", start=0, num=limit + 1, withscores=True
            ),
        )
        page, more = ids_with_seq[:limit], len(ids_with_seq) > limit
        raws = cast(list[str | None], self.redis.mget([self._job_key(job_id) for job_id, _ in page])) if page else []
        jobs = [Job.model_validate_json(raw) for raw in raws if raw is not None]
        expired = [job_id for (job_id, _), raw in zip(page, raws, strict=True) if raw is None]
        if expired:
            self.redis.zrem(self._owner_key(owner), *expired)
        next_cursor = str(int(page[-1][1])) if more and page else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    def queue_position(self, job_id: str) -> int | None:
        """Jobs ahead of this one in the queue (0: next to run); None when it is not queued."""
        rank = cast(int | None, self.redis.zrank(self._queued_key, job_id))
        return rank

    def queued_ids(self, limit: int) -> list[str]:
        """The first ``limit`` queued ids in queue order; read-only (a worker prepares the next job ahead)."""
        return cast(list[str], self.redis.zrange(self._queued_key, 0, limit - 1))

    def queue_length(self) -> int:
        return cast(int, self.redis.zcard(self._queued_key))

    def running_ids(self) -> list[str]:
        return sorted(cast(set[str], self.redis.smembers(self._running_key)))

    def is_held(self, job_id: str) -> bool:
        """Whether a live worker holds the job's lease."""
        return bool(self.redis.exists(self._lease_key(job_id)))

    # Writes
    def create(self, job: Job, *, max_queued_per_owner: int | None = None) -> Job:
        """Store a new queued job.

        Raises:
            QueueLimitError: the owner already has ``max_queued_per_owner`` queued jobs (checked and
                created in one transaction, so concurrent requests cannot overshoot the limit).
        """
        if job.status is not JobStatus.queued:
            raise InvalidTransitionError(f"a new job must be queued, not {job.status.value}")
        seq = int(self.redis.incr(f"{self.prefix}:seq"))
        owner_key = self._owner_key(job.owner)
        for _ in range(_MAX_TXN_RETRIES):
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(owner_key, self._queued_key)
                    if max_queued_per_owner is not None:
                        queued = cast(int, pipe.zintercard(2, [owner_key, self._queued_key]))
                        if queued >= max_queued_per_owner:
                            raise QueueLimitError(
                                f"you have {queued} queued jobs; the limit per API key is {max_queued_per_owner}"
                            )
                    pipe.multi()
                    pipe.set(self._job_key(job.id), job.model_dump_json(), nx=True)
                    pipe.zadd(self._queued_key, {job.id: seq})
                    pipe.zadd(owner_key, {job.id: seq})
                    pipe.hincrby(self._status_counts_key, JobStatus.queued.value, 1)
                    created, *_ = pipe.execute()
                except redis.WatchError:
                    continue
            if not created:
                raise InvalidTransitionError(f"job {job.id} exists already")
            return job
        raise RuntimeError(f"job {job.id}: too much contention, gave up after {_MAX_TXN_RETRIES} tries")

    def count_queued(self, owner: str) -> int:
        """The owner's queued jobs (Redis >= 7: ZINTERCARD)."""
        return cast(int, self.redis.zintercard(2, [self._owner_key(owner), self._queued_key]))

    def claim(self, job_id: str, worker: str, *, lease_s: int) -> Job | None:
        """Take a job for ``worker``: queued -> running, or take over a running job whose lease lapsed.

        Returns None (do nothing) when the job is finished or a live worker holds it, which is
        what makes redelivered and duplicated task messages harmless.
        """

        def claim_job(job: Job, pipe: Any) -> Job | None:
            if job.status is JobStatus.running and pipe.exists(self._lease_key(job_id)):
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
            if job.status is not JobStatus.running or pipe.exists(self._lease_key(job_id)):
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
        key = self._lease_key(job_id)
        for _ in range(_MAX_TXN_RETRIES):
            with self.redis.pipeline() as pipe:
                pipe.watch(key)
                if pipe.get(key) != worker:
                    return False
                pipe.multi()
                pipe.set(key, worker, ex=lease_s)
                try:
                    pipe.execute()
                    return True
                except redis.WatchError:
                    # The holder's lease thread and its steps renew concurrently: a WatchError means the
                    # key changed, not that it was taken. Read it again (a taken lease then says so).
                    continue
        return False

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

    def _update(
        self,
        job_id: str,
        change: Callable[[Job, Any], Job | None],
        *,
        lease: tuple[str, int] | None = None,
    ) -> Job | None:
        """Read-check-write one job in a WATCH transaction, keeping the index sets in step."""
        key = self._job_key(job_id)
        for _ in range(_MAX_TXN_RETRIES):
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key, self._lease_key(job_id))
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
                    retention_s = self.job_retention_s if after.status.is_terminal else None
                    pipe.set(key, after.model_dump_json(), ex=retention_s)
                    self._index(pipe, after)
                    if after.status is not before.status:
                        pipe.hincrby(self._status_counts_key, before.status.value, -1)
                        pipe.hincrby(self._status_counts_key, after.status.value, 1)
                    if lease is not None:
                        pipe.set(self._lease_key(job_id), lease[0], ex=lease[1])
                    elif after.status is not JobStatus.running:
                        pipe.delete(self._lease_key(job_id))
                    pipe.execute()
                    return after
                except redis.WatchError:
                    continue
        raise RuntimeError(f"job {job_id}: too much contention, gave up after {_MAX_TXN_RETRIES} tries")

    def _index(self, pipe: Any, job: Job) -> None:
        if job.status is JobStatus.queued:
            # A re-queued job (its worker was lost) goes to the front: it has waited its turn once.
            pipe.zadd(self._queued_key, {job.id: 0}, nx=True)
        else:
            pipe.zrem(self._queued_key, job.id)
        if job.status is JobStatus.running:
            pipe.sadd(self._running_key, job.id)
        else:
            pipe.srem(self._running_key, job.id)

    def status_counts(self) -> dict[JobStatus, int]:
        raw = cast(dict[str, str], self.redis.hgetall(self._status_counts_key))
        return {status: int(raw.get(status.value, 0)) for status in JobStatus}

    # Stage metrics, shared by every worker so the gateway can export one histogram
    def record_stage_seconds(self, timings: dict[str, float]) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for stage, seconds in timings.items():
                bucket = next((str(b) for b in STAGE_BUCKETS_S if seconds <= b), "+Inf")
                key = f"{self.prefix}:stage_seconds:{stage}"
                pipe.hincrby(key, bucket, 1)
                pipe.hincrbyfloat(key, "sum", seconds)
                pipe.hincrby(key, "count", 1)
            pipe.execute()

    def stage_histograms(self) -> dict[str, StageHistogram]:
        histograms = {}
        prefix = f"{self.prefix}:stage_seconds:"
        for key in cast(list[str], list(self.redis.scan_iter(match=prefix + "*", count=100))):
            raw = cast(dict[str, str], self.redis.hgetall(key))
            bounds = [str(b) for b in STAGE_BUCKETS_S] + ["+Inf"]
            histograms[key[len(prefix) :]] = StageHistogram(
                bucket_counts=[int(raw.get(bound, 0)) for bound in bounds],
                sum_s=float(raw.get("sum", 0.0)),
                count=int(raw.get("count", 0)),
            )
        return histograms

    # Workers
    def record_heartbeat(self, worker: str, info: dict[str, Any], *, ttl_s: int) -> None:
        self.redis.set(f"{self.prefix}:worker:{worker}", json.dumps(info), ex=ttl_s)

    def remove_heartbeat(self, worker: str) -> None:
        self.redis.delete(f"{self.prefix}:worker:{worker}")

    def live_workers(self) -> dict[str, dict[str, Any]]:
        keys = list(self.redis.scan_iter(match=f"{self.prefix}:worker:*", count=100))
        values = self.redis.mget(keys) if keys else []
        prefix_len = len(f"{self.prefix}:worker:")
        return {key[prefix_len:]: json.loads(value) for key, value in zip(keys, values, strict=True) if value}
