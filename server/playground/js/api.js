// Calls to the server's own API: the bearer key from session storage, and every error
// turned into an ApiError carrying the server's own message.

const KEY_STORAGE = "qwen3-tts-api-key";

export class ApiError extends Error {
  constructor(status, message, { type = null, param = null, code = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  // "400 · input: input must contain text to speak" (plus the field it is about).
  describe() {
    const where = this.param ? ` (${this.param})` : "";
    const status = this.status ? `${this.status}${this.code ? " " + this.code : ""} · ` : "";
    return `${status}${this.message}${where}`;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// OpenAI's error body {"error": {"message", "type", "param", "code"}}, or the bare status.
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy in between, or the connection broke
  }
  const error = body && body.error;
  if (error && typeof error.message === "string") {
    return new ApiError(response.status, error.message, error);
  }
  return new ApiError(response.status, `${response.status} ${response.statusText || "error"}`);
}

// fetch that throws ApiError for a non-2xx answer and for a network failure.
export async function request(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: withKey(init.headers) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the server could not be reached (${error.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson(path) {
  const response = await request(path);
  return response.json();
}

export function postJson(path, body, { signal } = {}) {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

export async function postForm(path, form) {
  const response = await request(path, { method: "POST", body: form });
  return response.json();
}

export async function deleteJson(path) {
  const response = await request(path, { method: "DELETE" });
  return response.json();
}

// The file name the server proposes in Content-Disposition, or a fallback.
export function attachmentName(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : fallback;
}
