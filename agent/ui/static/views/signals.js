// Where the console's series come from: the service timeline for per-service signals
// (latency, errors, tokens, cost) and /api/v1/metrics for stored samples (GPU, vector DB,
// serving), normalised to {name, layer, unit, labels, points}.

import { maybe } from "../api.js";
import { seconds } from "../charts.js";

// A timeline payload ({times, series: [{signal, values}]}) or a metrics payload
// ({series: [{name, canonical, points}]}) as a flat list of {name, layer, unit, labels, points}.
export function seriesOf(payload) {
  if (!payload || !Array.isArray(payload.series)) return [];
  const times = payload.times;
  return payload.series.map((s) => {
    const labels = { ...(s.labels ?? {}) };
    for (const key of ["host", "device"]) if (s[key]) labels[key] = s[key];
    const points = s.points ?? (times ? times.map((t, i) => [t, s.values[i]]) : []);
    return { ...s, name: s.signal ?? s.canonical ?? s.name, labels, points };
  });
}

// Detector signal names that the timeline spells differently.
const ALIASES = { error_rate: "error.ratio", throughput: "requests" };

export function matches(series, signal) {
  const wanted = ALIASES[signal] ?? signal;
  return series.name === wanted || series.canonical === wanted || series.signal === wanted;
}

// Per-request series derived from a timeline's per-step totals (cost, tokens) and requests.
export function perRequest(all) {
  const requests = all.find((s) => s.name === "requests" && s.source === "spans");
  if (!requests) return [];
  const derive = (name, total, unit) => {
    const t = all.find((s) => s.name === total && s.source === "spans");
    if (!t) return null;
    const points = t.points.map(([time, v], i) => {
      const n = requests.points[i]?.[1];
      return [time, v === null || v === undefined || !n ? null : v / n];
    });
    return { name, layer: t.layer, unit, labels: {}, points, source: "derived" };
  };
  // Named as the detectors name them, so evidence finds them.
  return [derive("cost_per_request", "cost", "USD"), derive("tokens.input_per_request", "tokens.input", "{token}"),
    derive("tokens.output_per_request", "tokens.output", "{token}")].filter(Boolean);
}

function labelOf(series) {
  const labels = series.labels ?? {};
  const parts = Object.entries(labels).filter(([k]) => !["service", "layer"].includes(k)).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(" ") : series.name;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// Baseline band: the 10th–90th percentile of the series before the incident started, with
// its median as a dashed line (the evidence table gives the detector's own baseline).
export function bandFor(series, startedS) {
  const before = series.flatMap((s) => s.points.filter(([t, v]) => seconds(t) < startedS && v !== null && v !== undefined).map(([, v]) => v)).sort((a, b) => a - b);
  if (before.length < 3) return null;
  return { lo: quantile(before, 0.1), hi: quantile(before, 0.9), mid: quantile(before, 0.5) };
}

export function stepFor(sinceMs, untilMs, points = 240) {
  const step = Math.max(60, Math.round((untilMs - sinceMs) / 1000 / points / 60) * 60);
  return `${step}s`;
}

// For each evidence signal of *incident*, its series over *range* (at most 4 per signal).
export async function evidenceSeries(incident, range) {
  const evidence = incident.evidence ?? [];
  const step = stepFor(Date.parse(range.since), Date.parse(range.until));
  let timeline = [];
  if (incident.service) {
    timeline = seriesOf(await maybe(`/api/v1/services/${encodeURIComponent(incident.service)}/timeline`, { ...range, step }));
    timeline = [...timeline, ...perRequest(timeline)];
  }
  const startedS = seconds(incident.started_at);
  const seen = new Set();
  const unique = evidence.filter((e) => !seen.has(e.signal) && seen.add(e.signal));
  const out = await Promise.all(unique.map(async (e) => {
    let found = timeline.filter((s) => matches(s, e.signal));
    if (found.length === 0 && /^[\w.]+$/.test(e.signal)) { // "deployment impact" is no metric
      const params = { name: e.signal, ...range };
      if (incident.service && ["model", "orchestration", "serving"].includes(e.layer)) params.service = incident.service;
      if (incident.host && ["infrastructure", "data"].includes(e.layer)) params.host = incident.host;
      found = seriesOf(await maybe("/api/v1/metrics", params));
    }
    found = found.filter((s) => (s.points ?? []).length > 0).slice(0, 4);
    if (found.length === 0) return null;
    return {
      signal: e.signal, layer: found[0].layer ?? e.layer, unit: found[0].unit ?? e.unit,
      series: found.map((s) => ({ label: found.length > 1 ? labelOf(s) : e.signal, points: s.points })),
      band: bandFor(found, startedS),
    };
  }));
  return out.filter(Boolean);
}

// Deployment and model-change markers for the charts.
export function markersFor(deployments, service) {
  return deployments
    .filter((d) => !service || !d.service || d.service === service)
    .map((d) => {
      const model = d.model && d.previous_model && d.model !== d.previous_model;
      const label = model ? `model ${d.previous_model} → ${d.model}`
        : `deploy ${d.previous_version ? `${d.previous_version} → ` : ""}${d.version ?? ""}`.trim();
      return { time: seconds(d.time ?? d.time_unix ?? d.at), label, kind: model || d.source === "model" ? "model" : "deploy" };
    });
}
