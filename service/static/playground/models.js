// The model picker: GET /models as a <select> (name and title), the chosen model's licence and summary
// beside it, and a warning when no live worker serves it (its jobs wait in the model's queue). When the
// list cannot be read the picker holds the server's default model only, and says why.

export const NO_WORKER = "No worker serves this model: jobs wait in its queue until one starts.";

export function defaultModel(models) {
  return (models.find((model) => model.default) || models[0])?.name ?? null;
}

// The default model as /openapi.json names it (JobCreate.model's default), for the fallback form.
export function openapiDefaultModel(openapi) {
  return openapi?.components?.schemas?.JobCreate?.properties?.model?.default ?? null;
}

function option(value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

export function renderPicker(select, models, chosen) {
  select.replaceChildren(...models.map((model) => option(model.name, `${model.name}: ${model.title}`)));
  select.value = chosen;
  select.disabled = models.length < 2;
  delete select.dataset.fallback;
}

export function renderModelInfo(box, model) {
  const license = document.createElement("span");
  license.className = "license";
  license.textContent = model.license;
  const summary = document.createElement("span");
  summary.className = "summary";
  summary.textContent = model.summary;
  const parts = [license, summary];
  if (model.live_workers === 0) {
    const warning = document.createElement("strong");
    warning.className = "no-worker";
    warning.textContent = NO_WORKER;
    parts.push(warning);
  }
  box.replaceChildren(...parts);
  box.dataset.liveWorkers = String(model.live_workers);
  delete box.dataset.fallback;
}

// GET /models failed: the picker holds only the server's default (the form is its JobParams), and the
// info box says why; an unauthorized answer only means the key is not entered yet.
export function renderFallback(select, box, name, error) {
  select.replaceChildren(option(name || "", name ? `${name} (the server's default)` : "the server's default model"));
  select.disabled = true;
  select.dataset.fallback = "true";
  const why = error?.code === "unauthorized"
    ? "Enter your API key to list the models this server serves."
    : `Could not list the models (GET /models: ${error?.message || "no answer"}).`;
  box.textContent = `${why} Until then the form is the default model's parameters (JobParams in /openapi.json), and `
    + "jobs go to the server's default model.";
  box.dataset.fallback = "true";
  delete box.dataset.liveWorkers;
}
