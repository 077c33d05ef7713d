"""ConsumerWatchdog's judgement: messages waiting, no task, check after check for stall_after_s, and only then."""

from dataclasses import dataclass, field

import redis

from core.settings import Settings
from worker.app import create_celery
from worker.heartbeat import ConsumerWatchdog
from worker.webhooks import create_webhook_celery


@dataclass
class Consumer:
    """What the watchdog reads (the broker lists and Celery's running tasks) and what it reports."""

    waiting: int = 0
    busy: bool = False
    redis_down: bool = False
    now: float = 0.0
    stalls: list[tuple[float, int]] = field(default_factory=list)

    def waiting_messages(self) -> int:
        if self.redis_down:
            raise redis.ConnectionError("Connection refused")
        return self.waiting

    def watchdog(self, stall_after_s: float = 4.0) -> ConsumerWatchdog:
        return ConsumerWatchdog(
            waiting_messages=self.waiting_messages, is_busy=lambda: self.busy,
            on_stall=lambda stalled_s, waiting: self.stalls.append((stalled_s, waiting)),
            stall_after_s=stall_after_s, clock=lambda: self.now,
        )  # fmt: skip


def checks_until(consumer: Consumer, watchdog: ConsumerWatchdog, end_s: float, step_s: float = 1.0) -> list[bool]:
    results = []
    while consumer.now <= end_s:
        results.append(watchdog.check())
        consumer.now += step_s
    return results


def test_consumer_watchdog_reports_messages_left_waiting_by_an_idle_consumer_after_stall_after_s() -> None:
    consumer = Consumer(waiting=2)
    watchdog = consumer.watchdog(stall_after_s=4.0)
    watchdog.consumer_started()

    assert checks_until(consumer, watchdog, end_s=4.0) == [False, False, False, False, True]
    assert consumer.stalls == [(4.0, 2)]


def test_consumer_watchdog_leaves_a_busy_or_idle_without_messages_consumer_alone() -> None:
    consumer = Consumer(waiting=3, busy=True)  # a long job: messages wait, and that is fine
    watchdog = consumer.watchdog()
    watchdog.consumer_started()
    assert not any(checks_until(consumer, watchdog, end_s=60.0))

    consumer.busy, consumer.waiting = False, 0  # idle, nothing to take
    assert not any(checks_until(consumer, watchdog, end_s=120.0))
    assert consumer.stalls == []


def test_consumer_watchdog_starts_over_when_the_consumer_takes_a_task_or_reconnects() -> None:
    consumer = Consumer(waiting=1)
    watchdog = consumer.watchdog(stall_after_s=4.0)
    watchdog.consumer_started()
    checks_until(consumer, watchdog, end_s=3.0)
    consumer.busy = True  # it took the message: the count starts again once it is idle
    watchdog.check()
    consumer.busy = False
    assert not any(checks_until(consumer, watchdog, end_s=7.0))

    watchdog.consumer_stopped()  # Celery's own reconnect loop: never a stall, however long
    assert not any(checks_until(consumer, watchdog, end_s=100.0))
    watchdog.consumer_started()
    assert checks_until(consumer, watchdog, end_s=105.0) == [False] * 4 + [True]


def test_consumer_watchdog_does_not_judge_while_redis_cannot_be_read() -> None:
    consumer = Consumer(waiting=1, redis_down=True)
    watchdog = consumer.watchdog(stall_after_s=4.0)
    watchdog.consumer_started()
    assert not any(checks_until(consumer, watchdog, end_s=30.0))

    consumer.redis_down = False  # back: the consumer gets a full stall_after_s to resume
    assert checks_until(consumer, watchdog, end_s=35.0) == [False] * 4 + [True]


def test_gpu_and_webhook_workers_both_run_the_watchdog_step() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")  # building the apps connects to nothing
    for app in (create_celery(settings), create_webhook_celery(settings)):
        assert [step.__name__ for step in app.steps["consumer"]] == ["ConsumerWatchdogStep"], app.main
