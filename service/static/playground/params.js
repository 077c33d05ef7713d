// The parameters form, generated from a model's params JSON schema (GET /models, params_schema; or, when
// that list cannot be read, the API's own JobParams): one input per property, named after it, with the
// schema's default, range and description. A new parameter or model in the API shows up here without a
// change to the page.

// A property's own schema: `anyOf: [{...}, {type: "null"}]` (an optional value) is its non-null branch.
function describe(name, property) {
  const branches = Array.isArray(property.anyOf) ? property.anyOf : [property];
  const value = branches.find((branch) => branch.type !== "null") || {};
  return {
    name,
    title: property.title || name,
    description: property.description || "",
    type: value.type || property.type || "string",
    // A one-value Literal (e.g. Wan's mode "animate") is `const`: a select of that one value.
    enum: value.enum || property.enum || (value.const !== undefined ? [value.const] : null),
    minimum: value.minimum ?? property.minimum,
    maximum: value.maximum ?? property.maximum,
    multipleOf: value.multipleOf ?? property.multipleOf,
    minLength: value.minLength ?? property.minLength,
    maxLength: value.maxLength ?? property.maxLength,
    hasDefault: Object.prototype.hasOwnProperty.call(property, "default"),
    default: property.default,
    nullable: branches.some((branch) => branch.type === "null"),
  };
}

// The fields of one params schema (a model's params_schema from GET /models).
export function schemaFields(schema) {
  if (!schema || !schema.properties) throw new Error("the model's params schema has no properties");
  return Object.entries(schema.properties).map(([name, property]) => describe(name, property));
}

// The fallback when GET /models cannot be read: JobParams (the default model's) from /openapi.json.
export function paramFields(openapi) {
  const schema = openapi?.components?.schemas?.JobParams;
  if (!schema || !schema.properties) throw new Error("the API's schema has no JobParams");
  return schemaFields(schema);
}

const LONG_TEXT = 200; // strings allowed longer than this (prompts) get a text area

function control(field) {
  if (field.enum) {
    const select = document.createElement("select");
    for (const option of field.enum) {
      const element = document.createElement("option");
      element.value = String(option);
      element.textContent = String(option);
      select.append(element);
    }
    if (field.hasDefault) select.value = String(field.default);
    return select;
  }
  const input = document.createElement("input");
  if (field.type === "boolean") {
    input.type = "checkbox";
    input.checked = Boolean(field.default);
    return input;
  }
  if (field.type === "integer" || field.type === "number") {
    input.type = "number";
    input.inputMode = field.type === "integer" ? "numeric" : "decimal";
    if (field.minimum !== undefined) input.min = String(field.minimum);
    // Seeds go up to 2^63-1, beyond what a double holds exactly: no max attribute, checked as digits below.
    if (field.maximum !== undefined && Number.isSafeInteger(field.maximum)) input.max = String(field.maximum);
    input.step = field.multipleOf ? String(field.multipleOf) : field.type === "integer" ? "1" : "any";
  } else if ((field.maxLength ?? Infinity) > LONG_TEXT) {
    const area = document.createElement("textarea");
    area.rows = 2;
    if (field.maxLength !== undefined) area.maxLength = field.maxLength;
    if (field.hasDefault && field.default !== null) area.value = String(field.default);
    return area;
  } else {
    input.type = "text";
    if (field.maxLength !== undefined) input.maxLength = field.maxLength;
  }
  if (field.hasDefault && field.default !== null) input.value = String(field.default);
  else input.placeholder = field.nullable ? "empty: the server picks one" : "";
  return input;
}

// Renders the form; `keep` (a Map of name -> value from formValues) restores what the user had typed, for
// a re-render of the same model's form (its list of models arrived after the key was entered).
export function renderParams(form, fields, keep = new Map()) {
  form.replaceChildren();
  for (const field of fields) {
    const row = document.createElement("label");
    row.className = "param";
    const title = document.createElement("span");
    title.className = "param-name";
    title.textContent = field.name;
    const input = control(field);
    input.name = field.name;
    input.id = `param-${field.name}`;
    if (keep.has(field.name)) {
      if (field.type === "boolean") input.checked = keep.get(field.name) === "true";
      else input.value = keep.get(field.name);
    }
    const help = document.createElement("small");
    const range = rangeText(field);
    help.textContent = [field.description, range].filter(Boolean).join(" ");
    row.append(title, input, help);
    form.append(row);
  }
}

// What the form holds now, by field name (checkboxes as "true"/"false"), for renderParams' `keep`.
export function formValues(form, fields) {
  const values = new Map();
  for (const field of fields) {
    const input = form.elements.namedItem(field.name);
    if (input) values.set(field.name, field.type === "boolean" ? String(input.checked) : input.value);
  }
  return values;
}

function rangeText(field) {
  const parts = [];
  if (field.minimum !== undefined && field.maximum !== undefined) parts.push(`${field.minimum} to ${bound(field.maximum)}`);
  else if (field.minimum !== undefined) parts.push(`at least ${field.minimum}`);
  if (field.multipleOf) parts.push(`a multiple of ${field.multipleOf}`);
  if (field.hasDefault && field.default !== null && field.default !== "") parts.push(`default ${field.default}`);
  return parts.length ? `(${parts.join(", ")})` : "";
}

function bound(maximum) {
  return Number.isSafeInteger(maximum) ? String(maximum) : "2^63-1";
}

// The form's values as [name, JSON text] pairs for the fields that differ from their default. Integers
// keep their digits as typed (a seed may exceed 2^53). Throws Error naming the field when one is invalid.
export function readParams(form, fields) {
  const pairs = [];
  for (const field of fields) {
    const input = form.elements.namedItem(field.name);
    if (!input) continue;
    const text = field.type === "boolean" ? String(input.checked) : input.value.trim();
    if (text === "") {
      if (input.validity && input.validity.badInput) throw new Error(`${field.name} must be a number`);
      continue;
    }
    const json = toJson(field, text);
    // A null default (seed: the server draws one) is no value to compare with: what is given is sent.
    if (field.hasDefault && field.default !== null && json === toJson(field, String(field.default))) continue;
    pairs.push([field.name, json]);
  }
  return pairs;
}

function toJson(field, text) {
  if (field.enum) {
    // The enum's own value, so a number stays a JSON number (Wan's prev_segment_conditioning_frames: 1 or 5).
    const value = field.enum.find((option) => String(option) === text);
    if (value === undefined) throw new Error(`${field.name} must be one of ${field.enum.join(", ")}`);
    return JSON.stringify(value);
  }
  if (field.type === "boolean") return text === "true" ? "true" : "false";
  if (field.type === "integer") {
    if (!/^-?\d+$/.test(text)) throw new Error(`${field.name} must be a whole number`);
    const digits = text.replace(/^(-?)0+(?=\d)/, "$1");
    checkRange(field, Number(digits), digits);
    return digits;
  }
  if (field.type === "number") {
    const number = Number(text);
    if (!Number.isFinite(number)) throw new Error(`${field.name} must be a number`);
    checkRange(field, number, text);
    return String(number);
  }
  if (field.minLength !== undefined && text.length < field.minLength) throw new Error(`${field.name} must be at least ${field.minLength} characters`);
  if (field.maxLength !== undefined && text.length > field.maxLength) throw new Error(`${field.name} must be at most ${field.maxLength} characters (got ${text.length})`);
  return JSON.stringify(text);
}

function checkRange(field, number, text) {
  if (field.minimum !== undefined && number < field.minimum) throw new Error(`${field.name} must be at least ${field.minimum} (got ${text})`);
  if (field.maximum !== undefined && number > field.maximum) throw new Error(`${field.name} must be at most ${bound(field.maximum)} (got ${text})`);
  if (field.multipleOf && number % field.multipleOf !== 0) throw new Error(`${field.name} must be a multiple of ${field.multipleOf} (got ${text})`);
}

export function paramsJson(pairs) {
  return `{${pairs.map(([name, json]) => `${JSON.stringify(name)}: ${json}`).join(", ")}}`;
}
