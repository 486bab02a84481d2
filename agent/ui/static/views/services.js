// Service overview: one service's five layers over a chosen range, on one time axis.

import { get, iso, maybe } from "../api.js";
import { timeChart } from "../charts.js";
import { h, num, table } from "../dom.js";
import { navigate } from "../state.js";
import { listOf } from "./incidents.js";
import { markersFor, perRequest, seriesOf, stepFor } from "./signals.js";

export const RANGES = { "1h": 1, "6h": 6, "24h": 24, "7d": 168, "30d": 720 };
const LAYERS = ["orchestration", "model", "serving", "data", "infrastructure"];

export function rangeOf(query, fallback = "24h") {
  const key = RANGES[query.get("range")] ? query.get("range") : fallback;
  const until = query.get("until") ? Date.parse(query.get("until")) : Date.now();
  const since = query.get("since") ? Date.parse(query.get("since")) : until - RANGES[key] * 3600 * 1000;
  return { key, since, until };
}

export function rangeSelect(value, id = "range") {
  return h("div", { class: "field" }, h("label", { for: id }, "Range"),
    h("select", { id, name: "range" }, Object.keys(RANGES).map((k) => h("option", { value: k, selected: k === value }, `last ${k}`))));
}

// Services that reported in the last 30 days (the cost report groups every request).
async function serviceNames() {
  const until = Date.now();
  const cost = await get("/api/v1/cost", { group_by: "service", since: iso(until - 30 * 86400 * 1000), until: iso(until) });
  return listOf(cost, "groups").map((g) => g.group).filter(Boolean).sort();
}

// The service's own span signals, as the issue lists them, one chart each.
const SPAN_CHARTS = [
  { layer: "orchestration", title: "Latency p50 / p95", names: ["latency.p50", "latency.p95"] },
  { layer: "orchestration", title: "Error rate", names: ["error.ratio"] },
  { layer: "orchestration", title: "Requests per step", names: ["requests"] },
  { layer: "model", title: "Tokens per request", names: ["tokens.input_per_request", "tokens.output_per_request"] },
  { layer: "model", title: "Cost per request", names: ["cost_per_request"] },
  { layer: "model", title: "Model latency p95", names: ["model.latency.p95"] },
  { layer: "model", title: "Energy per step", names: ["energy"] },
  { layer: "data", title: "Retrieval latency p95", names: ["retrieval.latency.p95"] },
];
// Sample signals shown first in their layer; the rest of the layer's signals follow folded.
const KEY_SAMPLES = [/^gpu\.temperature$/, /^gpu\.power\.draw$/, /^gpu\.throttle\./, /^gpu\.utilization$/,
  /^serving\.queue/, /^serving\.requests\.(waiting|running)/, /^serving\.kv_cache\.usage$/,
  /^vectordb\.segments/, /^vectordb\.(query|request)\.latency/];
const MAX_LINES = 8;

// Chart specs for one layer: {title, unit, series, key}.
export function chartsFor(layer, all) {
  const charts = [];
  for (const spec of SPAN_CHARTS.filter((c) => c.layer === layer)) {
    const series = spec.names.map((n) => all.find((s) => s.name === n && s.source !== undefined && ["spans", "derived"].includes(s.source))).filter(Boolean);
    if (series.length) charts.push({ title: spec.title, unit: series[0].unit, series, key: true });
  }
  const bySignal = new Map();
  for (const s of all.filter((x) => x.layer === layer && !["spans", "derived"].includes(x.source))) {
    if (!bySignal.has(s.name)) bySignal.set(s.name, []);
    bySignal.get(s.name).push(s);
  }
  for (const [name, series] of [...bySignal.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const key = KEY_SAMPLES.some((re) => re.test(name));
    charts.push({ title: name, unit: series[0].unit, series: series.slice(0, MAX_LINES), key });
  }
  return [...charts.filter((c) => c.key), ...charts.filter((c) => !c.key)];
}

export async function renderServices(service, query) {
  const names = await serviceNames();
  const { key, since, until } = rangeOf(query);
  const chosen = service ?? names[0] ?? null;
  const form = h("form", { class: "filters", "aria-label": "Choose service and range", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "field" }, h("label", { for: "service" }, "Service"),
      h("select", { id: "service", name: "service" }, names.map((n) => h("option", { value: n, selected: n === chosen }, n)))),
    rangeSelect(key));
  form.addEventListener("change", () => {
    const data = Object.fromEntries(new FormData(form));
    navigate(`services/${encodeURIComponent(data.service)}`, { range: data.range });
  });
  const section = h("section", {}, h("h1", {}, chosen ? `Service ${chosen}` : "Services"), form);
  if (!chosen) return section.append(h("p", { class: "empty" }, "No services have reported yet.")), section;
  const range = { since: iso(since), until: iso(until) };
  const [timeline, deployments, anomalies] = await Promise.all([
    get(`/api/v1/services/${encodeURIComponent(chosen)}/timeline`, { ...range, step: stepFor(since, until) }),
    maybe("/api/v1/deployments", { service: chosen, ...range }),
    maybe("/api/v1/anomalies", { service: chosen, ...range, limit: 50 }),
  ]);
  const markers = markersFor(listOf(deployments, "deployments"), chosen);
  const base = seriesOf(timeline).filter((s) => (s.points ?? []).some(([, v]) => v !== null));
  const all = [...base, ...perRequest(base)];
  const syncKey = `service-${chosen}`;
  const chart = (layer, group) => timeChart({
    id: `${layer}:${group.title}`, title: group.title, unit: group.unit, markers,
    series: group.series.map((s) => ({ label: seriesLabel(s, group.series.length), points: s.points })),
    range: [since / 1000, until / 1000], syncKey, height: 150,
  }).figure;
  for (const layer of LAYERS) {
    const charts = chartsFor(layer, all);
    const block = h("section", { class: "layer", "aria-labelledby": `layer-${layer}` },
      h("h2", { id: `layer-${layer}` }, layer));
    if (charts.length === 0) block.append(h("p", { class: "empty" }, "No data for this layer in this range."));
    const key = charts.filter((c) => c.key);
    const rest = charts.filter((c) => !c.key);
    block.append(h("div", { class: "charts" }, key.map((c) => chart(layer, c))));
    if (rest.length) {
      const more = h("details", {}, h("summary", {}, `${rest.length} more ${layer} signal${rest.length === 1 ? "" : "s"}`));
      more.addEventListener("toggle", () => {
        if (more.open && !more.querySelector(".charts")) more.append(h("div", { class: "charts" }, rest.map((c) => chart(layer, c))));
      });
      block.append(more);
    }
    section.append(block);
  }
  section.append(anomalyTable(listOf(anomalies, "anomalies")));
  return section;
}

// The buckets the streaming scorer flagged on this service's series (newest first).
function anomalyTable(rows) {
  const block = h("section", { class: "layer", "aria-labelledby": "anomalies" },
    h("h2", { id: "anomalies" }, "Anomaly scores"));
  if (rows.length === 0) return block.append(h("p", { class: "empty" }, "No series of this service scored as anomalous in this range.")), block;
  const where = (a) => Object.entries(a.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(" ");
  block.append(table("Buckets scoring at or above the threshold", ["time", "score", "layer", "signal", "series", "value"],
    rows.map((a) => [a.time.replace("T", " ").slice(0, 16), num(a.score), a.layer, a.signal, where(a), num(a.value, a.unit)])));
  return block;
}

function seriesLabel(s, count) {
  const labels = Object.entries(s.labels ?? {}).filter(([k]) => k !== "service").map(([k, v]) => `${k}=${v}`).join(" ");
  if (count === 1 && !labels) return s.name;
  return labels || s.name;
}
