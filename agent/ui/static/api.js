// The console's only way to the agent: the public /api/v1 routes, same origin.
//
// Token: when the agent has one, the user types it once; it is kept in sessionStorage
// (gone when the tab closes) and sent as "Authorization: Bearer".
// Writes: the console is read-only by default. "Enable actions" runs a write probe,
// POST /api/v1/incidents/<PROBE_ID>/ack for an id no incident can have: any answer but
// 401/403/405 means this session's credentials reach the write handlers, so ack/resolve
// buttons are shown; the probe itself changes nothing (the handler answers 404).

const TOKEN_KEY = "strata.token";
const WRITES_KEY = "strata.writes";
export const PROBE_ID = "strata-ui-write-probe";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  get writes() { return sessionStorage.getItem(WRITES_KEY) === "1"; },
  set writes(on) {
    if (on) sessionStorage.setItem(WRITES_KEY, "1");
    else sessionStorage.removeItem(WRITES_KEY);
  },
};

// Listeners told about 401s (the shell shows the token form).
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) { unauthorizedListeners.add(fn); }

function headers(extra = {}) {
  const out = { accept: "application/json", ...extra };
  if (session.token) out.authorization = `Bearer ${session.token}`;
  return out;
}

export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

async function request(method, path, params, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(url(path, params), init);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const payload = await response.json();
      detail = typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail);
    } catch { /* not JSON */ }
    if (response.status === 401) unauthorizedListeners.forEach((fn) => fn());
    throw new ApiError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

export const get = (path, params) => request("GET", path, params);
export const post = (path, body = {}) => request("POST", path, undefined, body);

// GET that answers null for 404 (a route or record not there yet) or 501 (a route this
// server does not serve: strata hub) instead of throwing.
export async function maybe(path, params) {
  try {
    return await get(path, params);
  } catch (err) {
    if (err instanceof ApiError && [404, 405, 501].includes(err.status)) return null;
    throw err;
  }
}

// True when this session may write (see the header comment).
export async function probeWrites() {
  try {
    await post(`/api/v1/incidents/${PROBE_ID}/ack`);
    return true;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return ![401, 403, 405].includes(err.status);
  }
}

export function iso(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
