// The playground's wiring: the API key, the two inputs, the model picker and its generated params form,
// submit and cancel, the live stream of the current job, and the key's recent jobs. Rendering lives in
// view.js (the job), models.js (the picker) and params.js (the form).

import { Api, ApiError } from "./api.js";
import { defaultModel, openapiDefaultModel, renderFallback, renderModelInfo, renderPicker } from "./models.js";
import { formValues, paramFields, paramsJson, readParams, renderParams, schemaFields } from "./params.js";
import { curlSnippet, pythonSnippet } from "./snippets.js";
import { DEFAULT_STAGES, JobView, errorTitle } from "./view.js";

const KEY_STORAGE = "mimicmotion.apiKey"; // sessionStorage: this tab only, gone when it closes
const INPUTS_STORAGE = "mimicmotion.inputs."; // + job id: what this tab submitted, for the snippets

const $ = (id) => document.getElementById(id);

const state = {
  openapi: null, // /openapi.json: the stages, and the fallback form when GET /models cannot be read
  models: [], // GET /models' data; empty until it was read
  model: null, // the chosen model's name; null: the fallback form, jobs name no model (the server's default)
  fields: [],
  keyRequired: true,
  files: { image: null, video: null },
  objectUrls: { image: null, video: null },
  uploads: new Map(), // File -> Upload, so a resubmit does not send the same file again
  job: null,
  stream: null, // AbortController of the event stream being read
};

const keyInput = $("api-key");
const api = new Api(() => keyInput.value.trim());
let view;

function showError(error) {
  const code = error instanceof ApiError ? error.code : "invalid_params";
  $("error-title").textContent = errorTitle(code);
  $("error-message").textContent = error.message;
  $("error-code").textContent = `code: ${code}${error.status ? ` · HTTP ${error.status}` : ""}`;
  $("error").dataset.code = code;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  delete $("error").dataset.code;
}

// --- the API key -----------------------------------------------------------------------------------

function setUpKey() {
  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  keyInput.addEventListener("change", () => {
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    loadHistory();
    loadModels(); // GET /models needs the key too
  });
  keyInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") keyInput.dispatchEvent(new Event("change"));
  });
}

async function probeKeyRequired() {
  // Without an Authorization header: a 401 means the gateway has keys; 200 means loopback without keys.
  try {
    const response = await fetch("/jobs?limit=1", { cache: "no-store" });
    state.keyRequired = response.status === 401;
  } catch {
    state.keyRequired = true;
  }
  $("key-note").textContent = state.keyRequired
    ? "This gateway needs an API key. It is kept in this tab only (session storage)."
    : "This gateway needs no key (loopback without MIMICMOTION_API_KEYS).";
  document.body.dataset.keyRequired = String(state.keyRequired);
}

// --- inputs: drop or pick a file (previewed at once), or give a URL -------------------------------------

function setFile(kind, file) {
  if (!file) return;
  state.files[kind] = file;
  if (state.objectUrls[kind]) URL.revokeObjectURL(state.objectUrls[kind]);
  state.objectUrls[kind] = URL.createObjectURL(file);
  const preview = $(`${kind}-local`);
  preview.src = state.objectUrls[kind];
  preview.hidden = false;
  $(`${kind}-name`).textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KiB`;
  $(`${kind}-url`).value = "";
}

function setUpInput(kind) {
  const input = $(`${kind}-input`);
  input.addEventListener("change", () => setFile(kind, input.files[0]));
  const zone = $(`${kind}-drop`);
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = event.dataTransfer?.files;
    if (!files?.length) return;
    input.files = files; // the picker shows the dropped file's name too
    setFile(kind, files[0]);
  });
  $(`${kind}-url`).addEventListener("input", () => {
    if (!$(`${kind}-url`).value.trim()) return;
    state.files[kind] = null; // a typed URL replaces the chosen file
    input.value = "";
    $(`${kind}-local`).hidden = true;
    $(`${kind}-name`).textContent = "";
  });
}

// The input as a URL for POST /jobs (uploading a local file first), and how a snippet should name it.
async function resolveInput(kind) {
  const file = state.files[kind];
  if (file) {
    let upload = state.uploads.get(file);
    if (!upload || Date.parse(upload.expires_at) < Date.now() + 60_000) {
      setStatusText(`Uploading ${file.name}…`);
      upload = await api.upload(file);
      state.uploads.set(file, upload);
    }
    return { url: upload.url, snippet: { kind: "file", name: file.name } };
  }
  const url = $(`${kind}-url`).value.trim();
  if (!url) throw new Error(`choose a ${kind === "image" ? "reference image" : "driving video"} or give its URL`);
  return { url, snippet: { kind: "url", url } };
}

function setStatusText(text) {
  $("status").textContent = text;
}

// --- the model picker and its parameters form ---------------------------------------------------------

// Reads GET /models; the first list read fills the picker, a later one (the key changed) replaces it and
// keeps the form's values when the same model stays chosen. Without a list: the fallback form.
async function loadModels() {
  let models;
  try {
    models = (await api.models()).data;
    if (!Array.isArray(models) || !models.length) throw new Error("the server lists no models");
  } catch (error) {
    if (!state.models.length) useFallback(error); // a list read before stays
    return;
  }
  const shown = state.model ?? openapiDefaultModel(state.openapi); // the fallback form is the default model's
  state.models = models;
  const chosen = models.some((model) => model.name === shown) ? shown : defaultModel(models);
  renderPicker($("model-select"), models, chosen);
  chooseModel(chosen, { keepValues: chosen === shown });
}

function chooseModel(name, { keepValues = false } = {}) {
  const model = state.models.find((candidate) => candidate.name === name);
  const form = $("params");
  let fields;
  try {
    fields = schemaFields(model.params_schema);
  } catch (error) {
    showError(error);
    return;
  }
  state.model = name;
  // The same fields as the form shows (the key changed, or the fallback form was this model's): leave the
  // inputs alone, so nothing typed meanwhile is lost to a re-render.
  const sameFields = keepValues && JSON.stringify(fields) === JSON.stringify(state.fields);
  if (!sameFields) {
    const keep = keepValues ? formValues(form, state.fields) : new Map();
    state.fields = fields;
    renderParams(form, fields, keep);
  }
  renderModelInfo($("model-info"), model);
  $("params-source").textContent = `From ${name}'s params schema (GET /models); an empty field takes the default.`;
}

function useFallback(error) {
  state.model = null;
  renderFallback($("model-select"), $("model-info"), openapiDefaultModel(state.openapi), error);
  if (state.fields.length) return; // the fallback form is there already (the key is still wrong)
  try {
    state.fields = paramFields(state.openapi);
    renderParams($("params"), state.fields);
  } catch (failure) {
    showError(failure);
  }
}

// The default model's name, for the snippets (which name a model only when it is another one).
function currentDefaultModel() {
  return state.models.length ? defaultModel(state.models) : openapiDefaultModel(state.openapi);
}

// --- submit, follow, cancel -------------------------------------------------------------------------

async function submit() {
  clearError();
  const button = $("submit");
  button.disabled = true;
  try {
    const params = readParams($("params"), state.fields);
    const image = await resolveInput("image");
    const video = await resolveInput("video");
    const model = state.model === null ? "" : `"model": ${JSON.stringify(state.model)}, `;
    const body = `{"image_url": ${JSON.stringify(image.url)}, "video_url": ${JSON.stringify(video.url)}, ${model}"params": ${paramsJson(params)}}`;
    const job = await api.createJob(body);
    sessionStorage.setItem(INPUTS_STORAGE + job.id, JSON.stringify({ image: image.snippet, video: video.snippet }));
    follow(job);
    loadHistory();
  } catch (error) {
    showError(error);
    if (state.job) view.render(state.job); // put back what "Uploading ..." replaced
    else setStatusText("No job yet.");
  } finally {
    button.disabled = false;
  }
}

function show(job) {
  state.job = job;
  view.render(job);
  $("cancel").disabled = view.isTerminal(job);
  $("copy-curl").disabled = $("copy-python").disabled = false;
  if (job.error) showError(new ApiError(0, job.error.code, job.error.message));
}

async function follow(job) {
  if (state.stream) state.stream.abort();
  clearError();
  $("snippet").hidden = true;
  show(job);
  if (view.isTerminal(job)) return;
  const controller = new AbortController();
  state.stream = controller;
  try {
    await api.streamEvents(job.id, (next) => {
      if (!controller.signal.aborted) show(next);
    }, controller.signal);
  } catch (error) {
    if (!controller.signal.aborted) showError(error);
  }
  if (!controller.signal.aborted) loadHistory();
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  try {
    show(await api.cancel(state.job.id));
  } catch (error) {
    showError(error);
  }
}

// --- the key's recent jobs ---------------------------------------------------------------------------

async function loadHistory() {
  const list = $("history");
  let page;
  try {
    page = await api.jobs(20);
  } catch (error) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = error.code === "unauthorized" ? "Enter your API key to see your jobs." : `Could not list jobs: ${error.message}`;
    list.replaceChildren(item);
    if (error.code === "unauthorized" && keyInput.value.trim()) showError(error);
    return;
  }
  const items = page.data.map((job) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.jobId = job.id;
    button.dataset.status = job.status;
    const status = document.createElement("span");
    status.className = `badge ${job.status}`;
    status.textContent = job.status;
    const when = document.createElement("span");
    when.textContent = new Date(job.created_at).toLocaleString();
    const id = document.createElement("span");
    id.className = "mono";
    id.textContent = job.id;
    button.append(status, when, id);
    if (job.metadata && Object.keys(job.metadata).length) {
      const metadata = document.createElement("span");
      metadata.className = "metadata";
      metadata.textContent = JSON.stringify(job.metadata);
      button.append(metadata);
    }
    button.addEventListener("click", () => reopen(job.id));
    item.append(button);
    return item;
  });
  if (!items.length) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = "No jobs yet.";
    items.push(item);
  }
  list.replaceChildren(...items);
}

async function reopen(id) {
  try {
    follow(await api.job(id));
  } catch (error) {
    showError(error);
  }
}

// --- copy as curl / Python ---------------------------------------------------------------------------

async function copySnippet(kind) {
  const job = state.job;
  if (!job) return;
  const inputs = JSON.parse(sessionStorage.getItem(INPUTS_STORAGE + job.id) || "null");
  const make = kind === "curl" ? curlSnippet : pythonSnippet;
  const text = make(location.origin, job, inputs, state.keyRequired, currentDefaultModel());
  const pre = $("snippet");
  pre.textContent = text;
  pre.hidden = false;
  pre.dataset.kind = kind;
  try {
    await navigator.clipboard.writeText(text);
    $("copy-note").textContent = "Copied.";
  } catch {
    $("copy-note").textContent = "Select the text below to copy it.";
  }
}

// --- start -------------------------------------------------------------------------------------------

async function start() {
  setUpKey();
  setUpInput("image");
  setUpInput("video");
  $("submit").addEventListener("click", submit);
  $("params").addEventListener("submit", (event) => {
    event.preventDefault(); // Enter in a field animates; the form itself never navigates
    submit();
  });
  $("model-select").addEventListener("change", (event) => chooseModel(event.target.value));
  $("cancel").addEventListener("click", cancel);
  $("refresh-history").addEventListener("click", loadHistory);
  $("copy-curl").addEventListener("click", () => copySnippet("curl"));
  $("copy-python").addEventListener("click", () => copySnippet("python"));
  let stages = DEFAULT_STAGES;
  try {
    state.openapi = await api.schema();
    stages = state.openapi.components?.schemas?.Stage?.enum || DEFAULT_STAGES;
  } catch (error) {
    showError(error);
  }
  await loadModels();
  view = new JobView({
    jobId: $("job-id"), status: $("status"), progress: $("progress"), progressText: $("progress-text"),
    eta: $("eta"), timeline: $("timeline"), details: $("details"), preview: $("preview"),
    previewEmpty: $("preview-empty"), poseVideo: $("pose-video"), poseEmpty: $("pose-empty"),
    poseDownload: $("pose-download"), resultVideo: $("result-video"), resultEmpty: $("result-empty"),
    resultDownload: $("result-download"),
  }, stages);
  await probeKeyRequired();
  api.readiness().then((readiness) => {
    $("tiny-model-note").hidden = !readiness?.tiny_model;
  });
  await loadHistory();
  document.body.dataset.ready = "true"; // for tests and scripts: the form and history are in place
}

start();
