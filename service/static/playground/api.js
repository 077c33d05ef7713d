// The gateway's HTTP API as the page uses it: JSON calls, multipart uploads and the SSE stream, all
// with the API key as a Bearer header (never in a URL). Errors become ApiError with the API's code.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // HTTP status, 0 when the request never got an answer
    this.code = code;
  }
}

export class Api {
  constructor(getKey) {
    this.getKey = getKey; // read at every call: the key field may change between calls
  }

  headers(extra = {}) {
    const key = this.getKey();
    return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
  }

  async request(method, path, { json, body, headers = {}, signal } = {}) {
    const init = { method, headers: this.headers(headers), signal, cache: "no-store" };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof json === "string" ? json : JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network_error", "The gateway did not answer; is it running?");
    }
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }

  schema() {
    return this.request("GET", "/openapi.json");
  }

  models() {
    return this.request("GET", "/models");
  }

  readiness() {
    return fetch("/readyz", { cache: "no-store" }).then((r) => r.json()).catch(() => null);
  }

  upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return this.request("POST", "/uploads", { body: form });
  }

  createJob(bodyText) {
    return this.request("POST", "/jobs", { json: bodyText });
  }

  job(id) {
    return this.request("GET", `/jobs/${encodeURIComponent(id)}`);
  }

  jobs(limit = 20) {
    return this.request("GET", `/jobs?limit=${limit}`);
  }

  cancel(id) {
    return this.request("POST", `/jobs/${encodeURIComponent(id)}/cancel`);
  }

  // Calls onJob(job, eventName) for every event of the job's stream until it ends. EventSource cannot
  // send an Authorization header, so the stream is read with fetch; a dropped stream resumes with
  // Last-Event-ID. Returns when the stream ends after the terminal status, or when signal aborts.
  async streamEvents(id, onJob, signal) {
    let lastEventId = null;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const headers = this.headers({ Accept: "text/event-stream" });
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      let response;
      try {
        response = await fetch(`/jobs/${encodeURIComponent(id)}/events`, { headers, signal, cache: "no-store" });
      } catch (error) {
        if (error.name === "AbortError") return;
        await pause(1000 * (attempt + 1), signal);
        continue;
      }
      if (!response.ok) throw await errorOf(response);
      const ended = await readFrames(response.body, signal, (frame) => {
        if (frame.id) lastEventId = frame.id;
        if (frame.data) onJob(JSON.parse(frame.data), frame.event);
      });
      if (ended) return;
      await pause(1000 * (attempt + 1), signal);
    }
  }
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || "The request failed.";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = String(body.error.code);
      message = String(body.error.message);
    }
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, code, message);
}

// Parses an SSE body (event:, id:, data: lines; a blank line ends a frame). Returns true when the server
// closed the stream (the job is finished), false when the connection broke.
async function readFrames(body, signal, onFrame) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { event: "message", id: null, data: "" };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (frame.data) onFrame(frame);
          frame = { event: "message", id: null, data: "" };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") frame.data += (frame.data ? "\n" : "") + text;
          else if (field === "event") frame.event = text;
          else if (field === "id") frame.id = text;
        }
      }
    }
  } catch (error) {
    if (signal && signal.aborted) return true;
    return false;
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
