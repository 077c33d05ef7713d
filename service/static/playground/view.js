// The live view of one job: status, queue position, step bar, ETA, stage timeline with timings, the
// preview, the pose and result videos, and the job's details. Everything from the job object is written
// with textContent or as an attribute value, never parsed as HTML.

export const DEFAULT_STAGES = ["fetching", "pose", "conditioning", "denoising", "decoding", "encoding", "uploading"];
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

// Plain words for the API's error codes; the code and the server's message are shown too.
const ERROR_TITLES = {
  unauthorized: "The gateway did not accept the API key.",
  network_error: "The gateway could not be reached.",
  invalid_request: "Something in the request is not valid.",
  invalid_json: "The request was not valid JSON.",
  not_found: "Not found (or it belongs to another API key).",
  upload_too_large: "The file is larger than this gateway accepts.",
  unsupported_media_type: "That file is not an image or a video this service reads.",
  invalid_upload: "The file could not be read (truncated, empty or corrupt).",
  too_many_uploads: "Too many uploads at once; try again in a moment.",
  too_many_queued_jobs: "Too many jobs are waiting; try again in a moment.",
  queue_unavailable: "The job queue is unavailable right now.",
  idempotency_conflict: "A different job was already sent with this idempotency key.",
  input_unreachable: "An input URL could not be downloaded.",
  unsupported_url: "An input URL is not one the service can fetch.",
  forbidden_address: "An input URL points at an address the service may not reach.",
  input_not_image: "The reference image is not an image.",
  input_not_video: "The driving video is not a video.",
  input_too_large: "An input is too large.",
  invalid_media: "An input could not be decoded.",
  no_person_detected: "No person was found in the reference image or the video.",
  timeout: "The job took longer than its time limit.",
  canceled: "The job was canceled.",
  storage_error: "Results could not be stored.",
  internal_error: "The service hit an unexpected error.",
  invalid_params: "A parameter is not valid.",
};

export function errorTitle(code) {
  return ERROR_TITLES[code] || "The request failed.";
}

function urlPath(url) {
  try {
    return new URL(url, location.href).pathname; // signed URLs are minted anew on every read: compare the file
  } catch {
    return url;
  }
}

function seconds(value) {
  return value >= 10 ? `${value.toFixed(0)} s` : `${value.toFixed(1)} s`;
}

export class JobView {
  constructor(elements, stages = DEFAULT_STAGES) {
    this.el = elements;
    this.stages = stages;
    this.reset();
  }

  reset() {
    this.jobId = null;
    this.first = null; // {at, fraction}: the first running observation, for the ETA
    this.shown = { preview: null, pose: null, result: null };
    const el = this.el;
    el.jobId.textContent = "";
    el.status.textContent = "No job yet.";
    el.status.dataset.status = "idle";
    el.progress.value = 0;
    delete el.progress.dataset.stage;
    el.progressText.textContent = "";
    el.eta.textContent = "";
    el.timeline.replaceChildren();
    el.details.replaceChildren();
    for (const media of [el.preview, el.poseVideo, el.resultVideo]) {
      media.removeAttribute("src");
      media.hidden = true;
    }
    el.previewEmpty.hidden = el.poseEmpty.hidden = el.resultEmpty.hidden = false;
    el.poseDownload.hidden = el.resultDownload.hidden = true;
  }

  render(job) {
    if (job.id !== this.jobId) {
      this.reset();
      this.jobId = job.id;
    }
    this.el.jobId.textContent = job.id;
    this.renderStatus(job);
    this.renderProgress(job);
    this.renderTimeline(job);
    this.renderMedia(job);
    this.renderDetails(job);
  }

  renderStatus(job) {
    const el = this.el.status;
    el.dataset.status = job.status;
    const stage = job.progress?.stage;
    const total = Object.values(job.timings || {}).reduce((sum, value) => sum + value, 0);
    el.textContent = {
      queued: job.queue_position === null || job.queue_position === undefined
        ? "Queued."
        : job.queue_position === 0 ? "Queued: next in line." : `Queued: ${job.queue_position} job(s) ahead.`,
      running: stage ? `Running: ${stage}.` : "Running.",
      succeeded: `Succeeded in ${seconds(total)} of work.`,
      failed: `Failed: ${job.error ? `${errorTitle(job.error.code)} (${job.error.code}) ${job.error.message}` : "no reason given."}`,
      canceled: "Canceled.",
    }[job.status] || job.status;
  }

  renderProgress(job) {
    const { progress: bar, progressText, eta } = this.el;
    const progress = job.progress;
    const fraction = job.status === "succeeded" ? 1 : progress?.fraction ?? 0;
    bar.value = fraction;
    if (progress) bar.dataset.stage = progress.stage;
    const step = progress && progress.total_steps > 0 ? ` step ${progress.step}/${progress.total_steps}` : "";
    const where = TERMINAL.has(job.status) ? job.status : progress ? `${progress.stage}${step}` : "";
    progressText.textContent = where ? `${where} · ${Math.round(fraction * 100)} %` : "";
    eta.textContent = this.etaText(job, fraction);
  }

  etaText(job, fraction) {
    if (job.status !== "running") return "";
    const now = performance.now();
    if (!this.first) this.first = { at: now, fraction };
    const done = fraction - this.first.fraction;
    if (done <= 0) return "";
    const left = ((now - this.first.at) / 1000) * ((1 - fraction) / done);
    return `about ${seconds(left)} left`;
  }

  renderTimeline(job) {
    const items = this.stages.map((stage) => {
      const item = document.createElement("li");
      item.dataset.stage = stage;
      const timing = job.timings?.[stage];
      const current = job.status === "running" && job.progress?.stage === stage;
      item.className = timing !== undefined ? "done" : current ? "current" : "pending";
      const name = document.createElement("span");
      name.textContent = stage;
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = timing !== undefined ? seconds(timing) : current ? "…" : "";
      item.append(name, time);
      return item;
    });
    this.el.timeline.replaceChildren(...items);
  }

  renderMedia(job) {
    const el = this.el;
    if (job.preview_url && urlPath(job.preview_url) !== this.shown.preview) {
      this.shown.preview = urlPath(job.preview_url); // each new preview is a new file (preview-<step>.webp)
      el.preview.src = job.preview_url;
      el.preview.hidden = false;
      el.previewEmpty.hidden = true;
    }
    const pose = job.pose_video_url || job.output?.pose_video_url;
    if (pose) this.showVideo("pose", pose, el.poseVideo, el.poseEmpty, el.poseDownload);
    const result = job.output?.video_url;
    if (result) this.showVideo("result", result, el.resultVideo, el.resultEmpty, el.resultDownload);
    if (job.data_removed_at) {
      el.resultEmpty.textContent = "This job's files were deleted.";
    }
  }

  showVideo(slot, url, video, empty, download) {
    download.href = url; // always the freshest link
    download.hidden = false;
    if (urlPath(url) === this.shown[slot]) return; // the same file: do not restart the playing video
    this.shown[slot] = urlPath(url);
    video.src = url;
    video.hidden = false;
    empty.hidden = true;
    video.play().catch(() => {}); // muted autoplay; a refusal only means the user presses play
  }

  renderDetails(job) {
    const rows = [
      ["model", job.model ?? ""],
      ["seed", job.params?.seed ?? ""],
      ["params", JSON.stringify(job.params ?? {}, null, 1)],
      ["created", job.created_at],
      ["finished", job.finished_at ?? ""],
    ];
    if (job.error) rows.push(["error", `${job.error.code}: ${job.error.message}`]);
    if (job.metadata && Object.keys(job.metadata).length) rows.push(["metadata", JSON.stringify(job.metadata, null, 1)]);
    if (job.output) rows.push(["output", `${job.output.width}×${job.output.height}, ${job.output.num_frames} frames at ${job.output.fps} fps, ${seconds(job.output.duration_s)}`]);
    const children = [];
    for (const [name, value] of rows) {
      const term = document.createElement("dt");
      term.textContent = name;
      const description = document.createElement("dd");
      description.dataset.field = name;
      description.textContent = String(value);
      children.push(term, description);
    }
    this.el.details.replaceChildren(...children);
  }

  isTerminal(job) {
    return TERMINAL.has(job.status);
  }
}
