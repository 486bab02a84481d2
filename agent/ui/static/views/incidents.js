// Incidents: the filterable list and one incident's page (what happened, why, what to do,
// the evidence signals charted across layers around it, and its event timeline).

import { ApiError, get, iso, maybe, post } from "../api.js";
import { seconds, timeChart } from "../charts.js";
import { age, badge, h, num, pct, table, timeEl } from "../dom.js";
import { context, navigate, say } from "../state.js";
import { evidenceSeries, markersFor } from "./signals.js";

const STATUSES = ["open", "acknowledged", "resolved"];
const SEVERITIES = ["critical", "warning", "info"];
const HOUR_MS = 3600 * 1000;

export const listOf = (payload, key) => (Array.isArray(payload) ? payload : payload?.[key] ?? []);

function select(id, label, options, value, allLabel = "All") {
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name: id },
      h("option", { value: "" }, allLabel),
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
}

export async function renderIncidents(query) {
  const filters = {
    status: query.get("status") ?? "", severity: query.get("severity") ?? "",
    service: query.get("service") ?? "", kind: query.get("kind") ?? "",
  };
  const [filtered, all] = await Promise.all([
    get("/api/v1/incidents", { status: filters.status, service: filters.service, kind: filters.kind }),
    get("/api/v1/incidents"),
  ]);
  const everything = listOf(all, "incidents");
  let rows = listOf(filtered, "incidents");
  if (filters.severity) rows = rows.filter((i) => i.severity === filters.severity);
  const distinct = (key) => [...new Set(everything.map((i) => i[key]).filter(Boolean))].sort();
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter incidents",
    onsubmit: (e) => e.preventDefault() },
    select("status", "Status", STATUSES, filters.status),
    select("severity", "Severity", SEVERITIES, filters.severity),
    select("service", "Service", distinct("service"), filters.service),
    select("kind", "Kind", distinct("kind"), filters.kind));
  form.addEventListener("change", () => {
    const data = Object.fromEntries(new FormData(form));
    navigate("incidents", data);
  });
  const now = Date.now();
  const body = rows.length === 0
    ? h("p", { class: "empty" }, "No incidents match these filters.")
    : table(`${rows.length} incident${rows.length === 1 ? "" : "s"}, newest first`,
      ["Status", "Severity", "Service", "Kind", "Summary", "Age"],
      [...rows].sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at)).map((i) => [
        badge(i.status, i.status),
        badge(i.severity, i.severity),
        i.service ?? i.host ?? "–",
        i.kind,
        h("a", { href: `#/incidents/${encodeURIComponent(i.id)}`, class: "incident-link" }, i.summary || i.id),
        timeEl(i.started_at, age(i.started_at, now)),
      ]), { class: "incidents" });
  return h("section", {}, h("h1", {}, "Incidents"), form, body);
}

function suggestionBlock(s) {
  if (!s) return h("p", {}, "No suggestion.");
  const rb = s.rollback;
  return h("div", { class: "suggestion" },
    h("p", {}, h("strong", {}, s.action ? s.action.replace(/_/g, " ") : "suggestion"), ": ", s.detail ?? ""),
    rb ? h("p", { class: "rollback" }, "Roll back ", h("strong", {}, rb.service), " from ",
      h("code", {}, rb.from_version), " to ", h("code", {}, rb.to_version)) : null);
}

function actions(incident) {
  if (!context.writes || incident.status === "resolved") return null;
  const act = async (verb) => {
    try {
      await post(`/api/v1/incidents/${encodeURIComponent(incident.id)}/${verb}`);
      say(`Incident ${verb === "ack" ? "acknowledged" : "resolved"}.`);
    } catch (err) {
      say(err instanceof ApiError ? `Could not ${verb}: ${err.detail}` : String(err));
    }
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  };
  return h("div", { class: "actions", role: "group", "aria-label": "Incident actions" },
    incident.status === "open" ? h("button", { type: "button", id: "ack", onclick: () => act("ack") }, "Acknowledge") : null,
    h("button", { type: "button", id: "resolve", onclick: () => act("resolve") }, "Resolve"));
}

// The window charted around an incident: from 6 h before it started to 2 h after it was
// resolved (or to now while it is not), at most a day after the start.
export function incidentWindow(incident, now = Date.now()) {
  const started = Date.parse(incident.started_at);
  const detected = Date.parse(incident.detected_at ?? incident.started_at);
  const end = incident.resolved_at ? Date.parse(incident.resolved_at) + 2 * HOUR_MS : now;
  return [started - 6 * HOUR_MS, Math.max(detected + HOUR_MS, Math.min(end, started + 24 * HOUR_MS))];
}

function eventsBlock(incident) {
  const events = incident.events ?? incident.timeline ?? [];
  const items = events.length ? events : [
    { time: incident.started_at, event: "started", detail: "first anomalous data (event time)" },
    { time: incident.detected_at, event: "detected", detail: "" },
  ];
  return h("ol", { class: "events" }, items.map((e) => h("li", {},
    timeEl(e.time ?? e.at), " ", h("strong", {}, e.event ?? e.type ?? ""), e.detail ? ` — ${e.detail}` : "")));
}

export async function renderIncident(id, _query) {
  const incident = await get(`/api/v1/incidents/${encodeURIComponent(id)}`);
  const [startMs, endMs] = incidentWindow(incident);
  const range = { since: iso(startMs), until: iso(endMs) };
  const [deployments, series] = await Promise.all([
    maybe("/api/v1/deployments", { service: incident.service ?? "", ...range }),
    evidenceSeries(incident, range),
  ]);
  const markers = [...markersFor(listOf(deployments, "deployments"), incident.service),
    { time: seconds(incident.started_at), label: "incident start", kind: "incident" }];
  const cause = incident.suspected_cause;
  const evidence = incident.evidence ?? [];
  const charts = h("div", { class: "charts", id: "incident-charts" });
  const syncKey = `incident-${id}`;
  for (const s of series) {
    const { figure } = timeChart({
      id: s.signal, title: `${s.signal} · ${s.layer}`, unit: s.unit, series: s.series,
      band: s.band, markers, range: [startMs / 1000, endMs / 1000], syncKey,
    });
    charts.append(figure);
  }
  if (series.length === 0) charts.append(h("p", { class: "empty" }, "No stored series for this incident's evidence signals."));
  return h("article", { class: "incident", dataset: { status: incident.status, incidentId: incident.id } },
    h("p", { class: "crumbs" }, h("a", { href: "#/incidents" }, "Incidents"), " / ", incident.kind),
    h("h1", {}, incident.summary || incident.kind),
    h("p", { class: "meta" },
      badge(incident.status, incident.status), " ", badge(incident.severity, incident.severity), " ",
      `${incident.kind} · ${incident.layer} layer · ${incident.service ?? incident.host ?? "–"} · started `,
      timeEl(incident.started_at), " · detected ", timeEl(incident.detected_at)),
    actions(incident),
    h("section", { class: "verdict", "aria-label": "Root cause and suggestion" },
      h("div", {}, h("h2", {}, "Root cause"),
        cause ? h("p", {}, h("strong", {}, `${cause.layer} · ${cause.signal}`), ": ", cause.detail ?? "")
          : h("p", {}, "Not determined.")),
      h("div", {}, h("h2", {}, "Suggestion"), suggestionBlock(incident.suggestion))),
    h("section", { "aria-labelledby": "signals-h" }, h("h2", { id: "signals-h" }, "Signals around the incident"),
      h("p", { class: "legend-note" }, "Shaded band: baseline. Purple lines: deployments; teal: model changes; red dashed: incident start."),
      charts),
    h("section", { "aria-labelledby": "evidence-h" }, h("h2", { id: "evidence-h" }, "Evidence"),
      table("Evidence signals: baseline against current", ["Signal", "Layer", "Baseline", "Current", "Change"],
        evidence.map((e) => [e.signal, e.layer, num(e.baseline, e.unit), num(e.current, e.unit), pct(e.baseline, e.current)]))),
    h("section", { "aria-labelledby": "events-h" }, h("h2", { id: "events-h" }, "Timeline"), eventsBlock(incident)));
}
