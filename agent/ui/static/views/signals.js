// Where the console's series come from: the service timeline for per-service signals
// (latency, errors, tokens, cost) and /api/v1/metrics for stored samples (GPU, vector DB,
// serving), normalised to {name, layer, unit, labels, points}.

import { maybe } from "../api.js";
import { seconds } from "../charts.js";

// A timeline or metrics payload as a flat list of series.
export function seriesOf(payload) {
  if (!payload) return [];
  if (Array.isArray(payload.series)) return payload.series;
  if (Array.isArray(payload.layers)) return payload.layers.flatMap((l) => (l.series ?? l.signals ?? []).map((s) => ({ layer: l.layer ?? l.name, ...s })));
  if (payload.layers && typeof payload.layers === "object") {
    return Object.entries(payload.layers).flatMap(([layer, signals]) =>
      (Array.isArray(signals) ? signals : Object.entries(signals).map(([name, s]) => ({ name, ...(Array.isArray(s) ? { points: s } : s) })))
        .map((s) => ({ layer, ...s })));
  }
  return [];
}

export function matches(series, signal) {
  return series.name === signal || series.canonical === signal || series.signal === signal;
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

// Baseline band: the API's band when it gives one, else the 10th–90th percentile of the
// points before the incident started, around the evidence baseline.
export function bandFor(series, evidence, startedS) {
  const given = series.find((s) => s.band || s.baseline_band);
  if (given) {
    const b = given.band ?? given.baseline_band;
    const [lo, hi] = Array.isArray(b) ? b : [b.lo ?? b.low, b.hi ?? b.high];
    return { lo, hi, mid: evidence?.baseline ?? b.mid };
  }
  const before = series.flatMap((s) => s.points.filter(([t, v]) => seconds(t) < startedS && v !== null).map(([, v]) => v)).sort((a, b) => a - b);
  if (before.length < 3) return evidence?.baseline != null ? { lo: evidence.baseline, hi: evidence.baseline, mid: evidence.baseline } : null;
  return { lo: quantile(before, 0.1), hi: quantile(before, 0.9), mid: evidence?.baseline ?? quantile(before, 0.5) };
}

export function stepFor(sinceMs, untilMs, points = 240) {
  const step = Math.max(60, Math.round((untilMs - sinceMs) / 1000 / points / 60) * 60);
  return `${step}s`;
}

// For each evidence signal of *incident*, its series over *range* (at most 4 per signal).
export async function evidenceSeries(incident, range) {
  const evidence = incident.evidence ?? [];
  const step = stepFor(Date.parse(range.since), Date.parse(range.until));
  const timeline = incident.service
    ? seriesOf(await maybe(`/api/v1/services/${encodeURIComponent(incident.service)}/timeline`, { ...range, step }))
    : [];
  const startedS = seconds(incident.started_at);
  const out = await Promise.all(evidence.map(async (e) => {
    let found = timeline.filter((s) => matches(s, e.signal));
    if (found.length === 0) {
      const params = { name: e.signal, ...range };
      if (incident.service && ["model", "orchestration", "serving"].includes(e.layer)) params.service = incident.service;
      if (incident.host && ["infrastructure", "data"].includes(e.layer)) params.host = incident.host;
      found = seriesOf(await maybe("/api/v1/metrics", params));
    }
    found = found.filter((s) => (s.points ?? []).length > 0).slice(0, 4);
    if (found.length === 0) return null;
    return {
      signal: e.signal, layer: e.layer ?? found[0].layer, unit: e.unit ?? found[0].unit,
      series: found.map((s) => ({ label: found.length > 1 ? labelOf(s) : e.signal, points: s.points })),
      band: bandFor(found, e, startedS),
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
