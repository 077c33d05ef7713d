"""Stand-ins for the gateway's task sender (``service.queue.TaskSender``) in tests that run no worker."""

from core.contract.queues import GPU_QUEUE


class RecordingSender:
    """Records each job id it is asked to send, and its queue; sends nothing."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.queues: list[str] = []

    def send_animate(self, job_id: str, *, queue: str = GPU_QUEUE) -> None:
        self.sent.append(job_id)
        self.queues.append(queue)


class BrokenSender:
    """A broker that is down: every send raises."""

    def send_animate(self, job_id: str, *, queue: str = GPU_QUEUE) -> None:
        raise ConnectionError("broker down")
