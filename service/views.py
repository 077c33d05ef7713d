"""JobViewer: turns stored jobs into JobPublic, reading the queue position and minting output URLs.

URLs are minted on every read from the storage keys in the record, so none ever goes stale.
"""

from dataclasses import dataclass

from core.jobs.records import Job, JobOutput, JobStatus
from core.jobs.store import JobPage, JobStore
from core.storage import Storage
from service.schemas import JobList, JobPublic, OutputPublic


@dataclass(frozen=True)
class JobViewer:
    store: JobStore
    storage: Storage
    url_ttl_s: int

    def show(self, job: Job) -> JobPublic:
        position = self.store.queue_position(job.id) if job.status is JobStatus.queued else None
        output = self._output(job.output) if job.output is not None else None
        return JobPublic.from_job(job, queue_position=position, output=output)

    def show_page(self, page: JobPage) -> JobList:
        return JobList(data=[self.show(job) for job in page.jobs], next_cursor=page.next_cursor)

    def _output(self, output: JobOutput) -> OutputPublic:
        video = self.storage.url_for(output.video_key, ttl_s=self.url_ttl_s)
        pose_video = self.storage.url_for(output.pose_video_key, ttl_s=self.url_ttl_s)
        return OutputPublic(
            video_url=video.url,
            pose_video_url=pose_video.url,
            width=output.width,
            height=output.height,
            num_frames=output.num_frames,
            fps=output.fps,
            duration_s=output.duration_s,
            size_bytes=output.size_bytes,
            sha256=output.sha256,
            expires_at=min(video.expires_at, pose_video.expires_at),
        )
