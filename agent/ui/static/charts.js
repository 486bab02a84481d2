// Time-series charts on the vendored uPlot (window.uPlot): one x axis in UTC seconds,
// optional baseline band and vertical markers (deploys, model changes, incident start).
// Every chart is a <figure> with a text summary, since a canvas says nothing to a reader.

import { h, num, tick } from "./dom.js";

const uPlot = window.uPlot;
export const PALETTE = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490",
  "#a16207", "#be185d", "#4d7c0f", "#475569"];
const MARKER_COLORS = { deploy: "#7e22ce", model: "#0e7490", incident: "#b91c1c" };

export const seconds = (iso) => (typeof iso === "number" ? iso : Date.parse(iso) / 1000);

// Align series with different timestamps on one x axis (nulls where a series has no point).
export function align(seriesList) {
  const tables = seriesList.map((s) => {
    const pts = [...s.points].map(([t, v]) => [seconds(t), v]).sort((a, b) => a[0] - b[0]);
    return [pts.map((p) => p[0]), pts.map((p) => p[1])];
  });
  if (tables.length === 0) return [[]];
  return tables.length === 1 ? tables[0] : uPlot.join(tables);
}

function drawBand(u, band) {
  const { ctx } = u;
  const top = u.valToPos(band.hi, "y", true);
  const bottom = u.valToPos(band.lo, "y", true);
  const { left, width, top: plotTop, height } = u.bbox;
  const y0 = Math.max(plotTop, Math.min(top, bottom));
  const y1 = Math.min(plotTop + height, Math.max(top, bottom));
  ctx.save();
  ctx.fillStyle = "rgba(21, 128, 61, 0.12)";
  if (y1 > y0) ctx.fillRect(left, y0, width, y1 - y0);
  if (band.mid !== undefined && band.mid !== null) {
    const y = u.valToPos(band.mid, "y", true);
    ctx.strokeStyle = "rgba(21, 128, 61, 0.8)";
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
  }
  ctx.restore();
}

function drawMarkers(u, markers, figure) {
  const { ctx } = u;
  const drawn = [];
  const { left, top, width, height } = u.bbox;
  const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
  ctx.save();
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  const lineHeight = 13 * devicePixelRatio;
  let row = 0;
  for (const m of [...markers].sort((a, b) => a.time - b.time)) {
    if (m.time < xmin || m.time > xmax) continue;
    const x = Math.round(u.valToPos(m.time, "x", true));
    ctx.strokeStyle = MARKER_COLORS[m.kind] || "#334155";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash(m.kind === "incident" ? [6, 4] : []);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    drawn.push(m.label || m.kind);
    if (m.label) {
      const w = ctx.measureText(m.label).width;
      const tx = x + 4 + w > left + width ? x - 4 - w : x + 4;
      ctx.fillText(m.label, tx, top + 2 * devicePixelRatio + (row++ % 3) * lineHeight); // staggered
    }
  }
  ctx.restore();
  figure.dataset.markers = drawn.join("|"); // what is on the canvas, for tests and tooling
}

function describe(spec, data) {
  const parts = [];
  spec.series.forEach((s, i) => {
    const ys = (data[i + 1] || []).filter((v) => v !== null && v !== undefined);
    if (ys.length === 0) return parts.push(`${s.label}: no data`);
    const last = ys[ys.length - 1];
    parts.push(`${s.label}: ${ys.length} points, min ${num(Math.min(...ys))}, ` +
      `max ${num(Math.max(...ys))}, last ${num(last, spec.unit)}`);
  });
  if (spec.band) parts.push(`baseline band ${num(spec.band.lo)}–${num(spec.band.hi)} ${spec.unit || ""}`);
  for (const m of spec.markers || []) parts.push(`marker: ${m.label} at ${new Date(m.time * 1000).toISOString()}`);
  return parts.join("; ");
}

/**
 * A line chart in a <figure>. spec: {title, unit, series: [{label, points: [[time, value]]}],
 * band: {lo, hi, mid}?, markers: [{time (s), label, kind}]?, range: [minS, maxS]?,
 * syncKey?, height?}. Returns {figure, plot}; figure.dataset.drawn is set after the first draw.
 */
export function timeChart(spec) {
  const data = align(spec.series);
  const figure = h("figure", { class: "chart", dataset: { chart: spec.id || spec.title } });
  const holder = h("div", { class: "chart-canvas", role: "img", "aria-label": `${spec.title}. ${describe(spec, data)}` });
  figure.append(h("figcaption", {}, spec.title, spec.unit ? h("span", { class: "unit" }, ` (${spec.unit})`) : null), holder);
  const hasData = data[0].length > 0;
  if (!hasData) {
    holder.append(h("p", { class: "empty" }, "No data in this range."));
    figure.dataset.drawn = "empty";
    return { figure, plot: null };
  }
  const markers = spec.markers || [];
  const band = spec.band;
  const yRange = (u, min, max) => {
    let lo = min, hi = max;
    if (band) { lo = Math.min(lo, band.lo); hi = Math.max(hi, band.hi); }
    if (lo === hi) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.08;
    return [lo >= 0 && lo - pad < 0 ? 0 : lo - pad, hi + pad];
  };
  const opts = {
    width: 600,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"), // every time in the console is UTC
    height: spec.height || 180,
    legend: { show: true, live: true },
    cursor: spec.syncKey ? { sync: { key: spec.syncKey } } : {},
    scales: {
      x: spec.range ? { time: true, range: () => spec.range } : { time: true },
      y: { range: yRange },
    },
    axes: [{ stroke: "#334155", grid: { stroke: "#e2e8f0" } },
      { stroke: "#334155", grid: { stroke: "#e2e8f0" }, size: 60, values: (u, vals) => vals.map(tick) }],
    series: [{ value: (u, v) => (v === null ? "–" : new Date(v * 1000).toISOString().slice(5, 16).replace("T", " ")) },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: false,
        points: { show: false },
        value: (u, v) => (v === null || v === undefined ? "–" : num(v, spec.unit)),
      }))],
    hooks: {
      drawClear: band ? [(u) => drawBand(u, band)] : [],
      draw: [(u) => { drawMarkers(u, markers, figure); figure.dataset.drawn = "1"; }],
    },
  };
  const plot = new uPlot(opts, data, holder);
  sizeToHolder(plot, holder);
  return { figure, plot };
}

const observed = new WeakMap();
const resizer = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const plot = observed.get(entry.target);
    const width = Math.floor(entry.contentRect.width);
    if (plot && width > 0 && Math.abs(width - plot.width) > 1) plot.setSize({ width, height: plot.height });
  }
});

function sizeToHolder(plot, holder) {
  observed.set(holder, plot);
  resizer.observe(holder);
}
