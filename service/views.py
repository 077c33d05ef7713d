"""JobViewer: turns stored jobs into JobPublic, reading the queue position, minting output URLs and
reading the job's webhook deliveries.

URLs are minted on every read from the storage keys in the record, so none ever goes stale.
"""

from dataclasses import dataclass

from core.contract.records import Job, JobStatus
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobPage, JobStore
from core.storage import Storage, mint_live_urls, mint_output
from service.schemas import JobList, JobPublic


@dataclass(frozen=True)
class JobViewer:
    store: JobStore
    storage: Storage
    url_ttl_s: int

    def show(self, job: Job) -> JobPublic:
        position = self.store.queue_position(job.id) if job.status is JobStatus.queued else None
        output = mint_output(self.storage, job.output, ttl_s=self.url_ttl_s) if job.output is not None else None
        # Only jobs that asked for webhooks have deliveries: the others cost no extra read.
        deliveries = Deliveries(self.store.db).for_job(job.id) if job.webhook_url else []
        live = mint_live_urls(self.storage, job, ttl_s=self.url_ttl_s)
        return JobPublic.from_job(job, queue_position=position, output=output, deliveries=deliveries, **live)

    def show_page(self, page: JobPage) -> JobList:
        return JobList(data=[self.show(job) for job in page.jobs], next_cursor=page.next_cursor)
