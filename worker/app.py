"""create_celery: the worker's Celery app, configured from core.contract.queues (as the gateway's client is).

Pool: solo, one process per GPU. The task runs in the worker's main thread, so the models loaded
at start stay warm on the device and nothing forks after CUDA is initialised ("Cannot re-initialize
CUDA in forked subprocess"). Prefork would buy hard time limits and child recycling, at the cost of
loading the models in a child within ``worker_proc_alive_timeout``; run_job keeps its own lease
instead, and the job store, not the pool, decides what runs (service-practices §5.2).
"""

from typing import Any

from celery import Celery, bootsteps
from celery.worker import state as worker_state

from core.contract.queues import celery_config
from core.jobs.broker import broker_queue_length
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.keys import KeyedRedis
from core.settings import Settings
from worker.heartbeat import ConsumerWatchdog, exit_stalled_worker


def create_celery(settings: Settings) -> Celery:
    """A Celery app for the GPU queue: prefetch 1, late ack, solo pool, one task at a time."""
    app = Celery("mimicmotion", set_as_current=True)
    app.conf.update(
        celery_config(
            settings.redis_url, sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master
        )
    )
    app.conf.update(worker_pool="solo", worker_concurrency=1, worker_send_task_events=False)
    app.conf.update(include=["worker.tasks"])
    app.steps["consumer"].add(consumer_watchdog_step(settings))
    return app


def consumer_watchdog_step(settings: Settings) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that runs a ConsumerWatchdog: a worker that stops consuming exits (see its docstring).

    A consumer that leaves messages waiting for ``2 * lease_s`` (the reaper's threshold for a job with
    no message) has stalled; Celery starts the step each time its consumer (re)connects.
    """

    class ConsumerWatchdogStep(bootsteps.StartStopStep):
        requires = ("celery.worker.consumer.tasks:Tasks",)  # started once the task consumer consumes

        def __init__(self, c: Any, **kwargs: Any) -> None:
            super().__init__(c, **kwargs)
            db = KeyedRedis.from_settings(settings)
            self.queues: list[str] = []
            self.watchdog = ConsumerWatchdog(
                waiting_messages=lambda: sum(broker_queue_length(db.client, queue) for queue in self.queues),
                is_busy=lambda: bool(worker_state.active_requests or worker_state.reserved_requests),
                on_stall=exit_stalled_worker(WorkerHeartbeats(db), c.hostname),
                stall_after_s=2 * settings.lease_s,
            )

        def start(self, c: Any) -> None:
            self.queues = [queue.name for queue in c.task_consumer.queues]
            self.watchdog.consumer_started()

        def stop(self, c: Any) -> None:
            self.watchdog.consumer_stopped()

        terminate = stop  # a cold shutdown

        def shutdown(self, c: Any) -> None:
            self.watchdog.stop()

    return ConsumerWatchdogStep
