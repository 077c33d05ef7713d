// "Copy as curl / Python": the same job (its model, named when it is not the server's default, and its
// resolved params, the seed included) as a shell script or a Python program. The API key is never written
// into a snippet: both read $MIMICMOTION_API_KEY.
//
// inputs: {image, video}, each {kind: "file", name} (a local file: uploaded first) or {kind: "url", url};
// an unknown input (a job this tab did not submit) is a file placeholder.

const PLACEHOLDER = { image: { kind: "file", name: "person.png" }, video: { kind: "file", name: "drive.mp4" } };
const PLACEHOLDER_NOTE = "this tab did not submit the job: person.png and drive.mp4 stand for its inputs";

// The job's model when a snippet must name it: another than the default (a job of an older gateway names none).
function modelOf(job, defaultModel) {
  return job.model && job.model !== defaultModel ? job.model : null;
}

export function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

export function curlSnippet(baseUrl, job, inputs, keyRequired, defaultModel = null) {
  const auth = keyRequired ? ` -H "Authorization: Bearer $MIMICMOTION_API_KEY"` : "";
  const lines = [keyRequired ? "# needs MIMICMOTION_API_KEY in the environment, and jq" : "# needs jq"];
  if (!inputs) lines.push(`# ${PLACEHOLDER_NOTE}`);
  lines.push(`BASE=${shellQuote(baseUrl)}`);
  const args = [];
  for (const role of ["image", "video"]) {
    const input = inputs?.[role] || PLACEHOLDER[role];
    const variable = role.toUpperCase();
    if (input.kind === "url") {
      lines.push(`${variable}=${shellQuote(input.url)}`);
    } else {
      lines.push(`${variable}=$(curl -sS --fail-with-body${auth} -F ${shellQuote(`file=@${input.name}`)} "$BASE/uploads" | jq -r .url)`);
    }
    args.push(`--arg ${role} "$${variable}"`);
  }
  const params = JSON.stringify(job.params);
  const model = modelOf(job, defaultModel);
  if (model) args.push(`--arg model ${shellQuote(model)}`);
  lines.push(
    `curl -sS --fail-with-body "$BASE/jobs"${auth} -H 'Content-Type: application/json' \\`,
    `  -d "$(jq -n ${args.join(" ")} --argjson params ${shellQuote(params)} \\`,
    `        '{image_url: $image, video_url: $video, ${model ? "model: $model, " : ""}params: $params}')"`,
  );
  return lines.join("\n");
}

export function pythonLiteral(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value); // a JSON string is a valid Python string
  if (Array.isArray(value)) return `[${value.map(pythonLiteral).join(", ")}]`;
  return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonLiteral(v)}`).join(", ")}}`;
}

export function pythonSnippet(baseUrl, job, inputs, keyRequired, defaultModel = null) {
  const source = (role) => {
    const input = inputs?.[role] || PLACEHOLDER[role];
    return JSON.stringify(input.kind === "url" ? input.url : input.name);
  };
  const client = keyRequired
    ? `Client(${JSON.stringify(baseUrl)}, api_key=os.environ["MIMICMOTION_API_KEY"])`
    : `Client(${JSON.stringify(baseUrl)})`;
  const model = modelOf(job, defaultModel);
  const modelArgument = model ? `model=${JSON.stringify(model)}, ` : "";
  return [
    ...(inputs ? [] : [`# ${PLACEHOLDER_NOTE}`]),
    ...(keyRequired ? ["import os", ""] : []),
    "from mimicmotion_client import Client",
    "",
    `client = ${client}`,
    `job = client.run(image=${source("image")}, video=${source("video")}, ${modelArgument}params=${pythonLiteral(job.params)})`,
    `client.download(job, "result.mp4")`,
  ].join("\n");
}
