"""JobStore against a real Redis: guarded transitions, claims, leases, listing, races, idempotency records."""

import threading
import uuid

import pytest

from core.contract.params import JobParams
from core.contract.records import Job, JobError, JobStatus, Progress, Stage
from core.contract.transitions import InvalidTransitionError
from core.errors import JobNotFoundError
from core.jobs.store import JobStore


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


def new_job(owner: str = "owner-a") -> Job:
    return Job(
        id=uuid.uuid4().hex, owner=owner, image_url="http://x/i.png", video_url="http://x/v.mp4",
        params=JobParams(seed=1),
    )  # fmt: skip


def test_create_then_get_round_trips_the_record(store: JobStore) -> None:
    job = store.create(new_job())
    assert store.get(job.id) == job
    assert store.queue_position(job.id) == 0


def test_get_hides_another_owners_job(store: JobStore) -> None:
    job = store.create(new_job(owner="a"))
    with pytest.raises(JobNotFoundError, match=f"^no job {job.id}$"):  # the same answer as for a missing job
        store.get(job.id, owner="b")
    with pytest.raises(JobNotFoundError, match=r"^no job missing$"):
        store.get("missing")


def test_queue_positions_follow_creation_order_and_claims(store: JobStore) -> None:
    jobs = [store.create(new_job()) for _ in range(3)]
    assert [store.queue_position(job.id) for job in jobs] == [0, 1, 2]
    store.claim(jobs[0].id, "w1", lease_s=30)
    assert [store.queue_position(job.id) for job in jobs] == [None, 0, 1]
    assert store.queue_length() == 2


def test_claim_runs_a_job_once_and_refuses_while_the_lease_is_live(store: JobStore) -> None:
    job = store.create(new_job())
    claimed = store.claim(job.id, "w1", lease_s=30)
    assert claimed is not None
    assert (claimed.status, claimed.worker, claimed.attempts) == (JobStatus.running, "w1", 1)
    assert claimed.started_at is not None
    assert store.claim(job.id, "w2", lease_s=30) is None
    assert store.is_held(job.id)
    assert store.running_ids() == [job.id]


def test_claim_takes_over_a_running_job_whose_lease_lapsed(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim(job.id, "w1", lease_s=30)
    store.db.client.delete(f"mm:lease:{job.id}")  # the worker died: nobody renews its lease
    taken = store.claim(job.id, "w2", lease_s=30)
    assert taken is not None and (taken.worker, taken.attempts) == ("w2", 2)
    with pytest.raises(InvalidTransitionError, match="is not running on w1"):  # the lost worker cannot finish it
        store.transition(job.id, JobStatus.succeeded, worker="w1")


def test_terminal_jobs_refuse_every_transition_and_claim(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim(job.id, "w1", lease_s=30)
    done = store.transition(job.id, JobStatus.failed, worker="w1", error=JobError(code="x", message="y"))
    assert done.finished_at is not None and not store.is_held(job.id)
    for target in JobStatus:
        with pytest.raises(InvalidTransitionError, match=f"a failed job cannot become {target.value}"):
            store.transition(job.id, target)
    assert store.claim(job.id, "w2", lease_s=30) is None
    assert store.get(job.id).status is JobStatus.failed


def test_queued_job_can_be_canceled_and_then_never_claimed(store: JobStore) -> None:
    job = store.create(new_job())
    store.transition(job.id, JobStatus.canceled, expected=[JobStatus.queued])
    assert store.claim(job.id, "w1", lease_s=30) is None
    assert store.queue_position(job.id) is None


def test_update_running_is_fenced_to_the_holding_worker(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim(job.id, "w1", lease_s=30)
    progress = Progress(stage=Stage.denoising, step=3, total_steps=25, fraction=0.3)
    assert store.update_running(job.id, "w2", progress=progress) is None
    updated = store.update_running(job.id, "w1", progress=progress)
    assert updated is not None and store.get(job.id).progress == progress


def test_renew_lease_only_for_the_holder(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim(job.id, "w1", lease_s=30)
    assert store.renew_lease(job.id, "w1", lease_s=30)
    assert not store.renew_lease(job.id, "w2", lease_s=30)
    store.transition(job.id, JobStatus.succeeded, worker="w1")
    assert not store.renew_lease(job.id, "w1", lease_s=30)


def test_requeue_puts_a_lost_job_at_the_front(store: JobStore) -> None:
    first, second = store.create(new_job()), store.create(new_job())
    store.claim(first.id, "w1", lease_s=30)
    requeued = store.transition(first.id, JobStatus.queued, expected=[JobStatus.running])
    assert (requeued.worker, requeued.started_at) == (None, None)
    assert store.queue_position(first.id) == 0 and store.queue_position(second.id) == 1


def test_concurrent_claims_give_the_job_to_exactly_one_worker(store: JobStore) -> None:
    job = store.create(new_job())
    results: list[Job | None] = []
    barrier = threading.Barrier(8)

    def claim(worker: str) -> None:
        other = JobStore.from_url(_url(store))
        barrier.wait()
        results.append(other.claim(job.id, worker, lease_s=30))

    threads = [threading.Thread(target=claim, args=(f"w{index}",)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [result for result in results if result is not None]
    assert len(winners) == 1 and store.get(job.id).worker == winners[0].worker


def test_list_jobs_pages_newest_first_per_owner(store: JobStore) -> None:
    mine = [store.create(new_job(owner="me")) for _ in range(5)]
    store.create(new_job(owner="other"))
    first = store.list_jobs("me", limit=2)
    assert [job.id for job in first.jobs] == [mine[4].id, mine[3].id]
    second = store.list_jobs("me", limit=2, cursor=first.next_cursor)
    assert [job.id for job in second.jobs] == [mine[2].id, mine[1].id]
    last = store.list_jobs("me", limit=2, cursor=second.next_cursor)
    assert [job.id for job in last.jobs] == [mine[0].id] and last.next_cursor is None


def _url(store: JobStore) -> str:
    kwargs = store.db.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_list_jobs_refuses_a_forged_cursor(store: JobStore) -> None:
    from core.errors import InvalidCursorError

    with pytest.raises(InvalidCursorError, match="is not one this API returned"):
        store.list_jobs("me", cursor="1; DROP")


def test_status_counts_follow_transitions(store: JobStore) -> None:
    jobs = [store.create(new_job()) for _ in range(3)]
    store.claim(jobs[0].id, "w1", lease_s=30)
    store.transition(jobs[0].id, JobStatus.succeeded, worker="w1")
    store.transition(jobs[1].id, JobStatus.canceled)
    counts = store.status_counts()
    assert counts[JobStatus.queued] == 1 and counts[JobStatus.succeeded] == 1
    assert counts[JobStatus.canceled] == 1 and counts[JobStatus.running] == 0


def test_create_enforces_the_owner_queue_limit_under_concurrency(store: JobStore) -> None:
    from core.errors import QueueLimitError

    outcomes: list[str] = []
    barrier = threading.Barrier(10)

    def create() -> None:
        other = JobStore.from_url(_url(store))
        barrier.wait()
        try:
            other.create(new_job(owner="limited"), max_queued_per_owner=3)
            outcomes.append("created")
        except QueueLimitError:
            outcomes.append("refused")

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 7
    assert store.count_queued("limited") == 3


def test_idempotency_records_bind_a_key_once(store: JobStore) -> None:
    from core.errors import IdempotencyConflictError
    from core.jobs.idempotency import IdempotencyRecords

    records = IdempotencyRecords(store.db)
    assert records.claim("me", "key-1", "print-a", "job-1") == "job-1"
    assert records.claim("me", "key-1", "print-a", "job-2") == "job-1"
    assert records.claim("you", "key-1", "print-a", "job-3") == "job-3"  # keys are per caller
    with pytest.raises(IdempotencyConflictError, match="used with a different request body"):
        records.claim("me", "key-1", "print-b", "job-4")
    records.release("me", "key-1")
    assert records.claim("me", "key-1", "print-b", "job-5") == "job-5"


def test_store_writes_the_keys_that_keys_py_documents(store: JobStore) -> None:
    job = store.create(new_job(owner="owner-k"))
    store.claim(job.id, "w1", lease_s=30)
    written = set(store.db.client.scan_iter(match="mm:*"))
    job_keys = {f"mm:job:{job.id}", f"mm:lease:{job.id}", "mm:owner:owner-k"}
    assert written == job_keys | {"mm:seq", "mm:running", "mm:status_counts"}  # mm:queued went with its last id
