// Service overview: one service's five layers over a chosen range, on one time axis.

import { get, iso, maybe } from "../api.js";
import { timeChart } from "../charts.js";
import { h } from "../dom.js";
import { navigate } from "../state.js";
import { listOf } from "./incidents.js";
import { markersFor, seriesOf, stepFor } from "./signals.js";

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

async function serviceNames() {
  const direct = await maybe("/api/v1/services");
  const names = listOf(direct, "services").map((s) => (typeof s === "string" ? s : s.name ?? s.service));
  if (names.length) return names.sort();
  const cost = await maybe("/api/v1/cost", { group_by: "service" });
  return listOf(cost, "groups").map((g) => g.key ?? g.group ?? g.service ?? g.value).filter(Boolean).sort();
}

// Series of one layer grouped into charts: same signal family and unit share a chart.
function chartsFor(layerSeries) {
  const groups = new Map();
  for (const s of layerSeries) {
    const family = (s.name ?? "").replace(/\.(p50|p95|p99)$/, "");
    const key = `${family}|${s.unit ?? ""}`;
    if (!groups.has(key)) groups.set(key, { title: family, unit: s.unit, series: [] });
    groups.get(key).series.push(s);
  }
  return [...groups.values()];
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
  const [timeline, deployments] = await Promise.all([
    get(`/api/v1/services/${encodeURIComponent(chosen)}/timeline`, { ...range, step: stepFor(since, until) }),
    maybe("/api/v1/deployments", { service: chosen, ...range }),
  ]);
  const markers = markersFor(listOf(deployments, "deployments"), chosen);
  const all = seriesOf(timeline);
  const syncKey = `service-${chosen}`;
  for (const layer of LAYERS) {
    const layerSeries = all.filter((s) => s.layer === layer && (s.points ?? []).length);
    const block = h("section", { class: "layer", "aria-labelledby": `layer-${layer}` },
      h("h2", { id: `layer-${layer}` }, layer));
    if (layerSeries.length === 0) block.append(h("p", { class: "empty" }, "No data for this layer in this range."));
    const grid = h("div", { class: "charts" });
    for (const group of chartsFor(layerSeries)) {
      grid.append(timeChart({
        id: `${layer}:${group.title}`, title: group.title, unit: group.unit, markers,
        series: group.series.map((s) => ({ label: seriesLabel(s, group.series.length), points: s.points })),
        range: [since / 1000, until / 1000], syncKey, height: 150,
      }).figure);
    }
    block.append(grid);
    section.append(block);
  }
  return section;
}

function seriesLabel(s, count) {
  const labels = Object.entries(s.labels ?? {}).filter(([k]) => k !== "service").map(([k, v]) => `${k}=${v}`).join(" ");
  if (count === 1) return s.name;
  return labels ? `${s.name} ${labels}` : s.name;
}
