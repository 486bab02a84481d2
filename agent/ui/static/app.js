// The console shell: hash routing, the session bar (token, actions), and view dispatch.
// Routes: #/incidents, #/incidents/<id>, #/services[/<name>], #/traces[/<trace_id>], #/cost.
// Query parameters after the route (#/incidents?status=open) hold each view's filters, so
// every screen is a shareable link.

import { ApiError, get, onUnauthorized, probeWrites, session } from "./api.js";
import { clear, h } from "./dom.js";
import { renderCost } from "./views/cost.js";
import { renderIncident, renderIncidents } from "./views/incidents.js";
import { renderServices } from "./views/services.js";
import { renderTrace, renderTraces } from "./views/traces.js";
import { context, say } from "./state.js";

const main = document.getElementById("main");

const ROUTES = [
  [/^incidents\/(.+)$/, (m, q) => renderIncident(decodeURIComponent(m[1]), q)],
  [/^incidents$/, (m, q) => renderIncidents(q)],
  [/^services\/(.+)$/, (m, q) => renderServices(decodeURIComponent(m[1]), q)],
  [/^services$/, (m, q) => renderServices(null, q)],
  [/^traces\/([0-9a-f]{32})$/, (m, q) => renderTrace(m[1], q)],
  [/^traces$/, (m, q) => renderTraces(q)],
  [/^cost$/, (m, q) => renderCost(q)],
];

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { path: path || "incidents", query: new URLSearchParams(query) };
}

let generation = 0;

async function route() {
  const current = ++generation;
  const { path, query } = parseHash();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (path.split("/")[0] === link.dataset.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const match = ROUTES.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
  main.setAttribute("aria-busy", "true");
  let content;
  try {
    content = match ? await match[1](match[0], query) : notFound(path);
  } catch (err) {
    content = failure(err);
  }
  if (current !== generation) return; // a newer navigation won
  clear(main).append(content);
  main.removeAttribute("aria-busy");
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    document.title = `${heading.textContent} · Strata console`;
    if (document.activeElement === document.body || main.contains(document.activeElement) === false) {
      heading.focus({ preventScroll: true });
    }
  }
  // Charts are drawn once attached (they size to their container).
  for (const hook of main.querySelectorAll("[data-after-attach]")) hook.dispatchEvent(new Event("attached"));
  main.dataset.route = path;
  performance.mark(`strata:rendered:${path.split("/")[0]}`);
}

function notFound(path) {
  return h("section", {}, h("h1", {}, "Not found"), h("p", {}, `No console page at #/${path}.`),
    h("p", {}, h("a", { href: "#/incidents" }, "Back to incidents")));
}

function failure(err) {
  const detail = err instanceof ApiError ? `The API answered ${err.status}: ${err.detail}` : String(err);
  return h("section", {}, h("h1", {}, "Could not load this page"), h("p", { class: "error" }, detail));
}

// -- session bar ------------------------------------------------------------------------

const dialog = document.getElementById("token-dialog");
const tokenInput = document.getElementById("token-input");
const actionsToggle = document.getElementById("actions-toggle");

function openTokenDialog() {
  if (dialog.open) return;
  tokenInput.value = session.token;
  dialog.showModal();
}

dialog.addEventListener("close", async () => {
  if (dialog.returnValue === "save") session.token = tokenInput.value.trim();
  else if (dialog.returnValue === "clear") session.token = "";
  else return;
  session.writes = false;
  await loadAgentInfo();
  route();
});

document.getElementById("token-button").addEventListener("click", openTokenDialog);
onUnauthorized(() => {
  say("This agent needs an API token.");
  openTokenDialog();
});

async function setActions(on) {
  if (on && !(await probeWrites())) {
    say("This session's token does not allow changes; the console stays read-only.");
    on = false;
  }
  session.writes = on;
  context.writes = on;
  actionsToggle.setAttribute("aria-pressed", String(on));
  actionsToggle.textContent = on ? "Actions enabled" : "Enable actions";
  document.body.dataset.writes = on ? "1" : "0";
  if (on) say("Actions enabled for this tab: incidents can be acknowledged and resolved.");
}

actionsToggle.addEventListener("click", async () => {
  await setActions(!context.writes);
  route();
});

async function loadAgentInfo() {
  const info = document.getElementById("agent-info");
  try {
    context.health = await get("/api/v1/health");
    const capture = context.health.capture_content ? "prompt capture ON" : "prompt capture off";
    info.textContent = `agent ${context.health.version} · ${capture}`;
  } catch (err) {
    context.health = null;
    info.textContent = err instanceof ApiError && err.status === 401 ? "not signed in" : "agent unreachable";
  }
}

async function start() {
  // The first page's data and the agent facts load in parallel; views that need the facts
  // (content capture) await context.ready.
  context.ready = loadAgentInfo();
  window.addEventListener("hashchange", route);
  if (session.writes) {
    await context.ready;
    await setActions(true);
  } else {
    document.body.dataset.writes = "0";
  }
  await route();
}

start();
