// Traces: search, and one trace as a waterfall whose rows open onto each span's tokens,
// cost, energy, events and logs, correlated layer samples and attributes (content only with
// capture on).

import { get, iso } from "../api.js";
import { badge, h, ms, num, table, time, timeEl, usd } from "../dom.js";
import { captureOn, context, isContentKey, navigate } from "../state.js";
import { listOf } from "./incidents.js";
import { rangeOf, rangeSelect } from "./services.js";

function input(id, label, value, attrs = {}) {
  return h("div", { class: "field" }, h("label", { for: id }, label),
    h("input", { id, name: id, value: value ?? "", ...attrs }));
}

export async function renderTraces(query) {
  const { key, since, until } = rangeOf(query, "24h");
  const filters = {
    service: query.get("service") ?? "", model: query.get("model") ?? "",
    status: query.get("status") ?? "", min_duration_ms: query.get("min_duration_ms") ?? "",
  };
  const payload = await get("/api/v1/traces", { ...filters, since: iso(since), until: iso(until), limit: 100 });
  const rows = listOf(payload, "traces");
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search traces" },
    input("service", "Service", filters.service),
    input("model", "Model", filters.model),
    h("div", { class: "field" }, h("label", { for: "status" }, "Status"),
      h("select", { id: "status", name: "status" }, ["", "ok", "error", "unset"].map((s) =>
        h("option", { value: s, selected: s === filters.status }, s || "any")))),
    input("min_duration_ms", "Min duration (ms)", filters.min_duration_ms, { type: "number", min: "0", inputmode: "numeric" }),
    rangeSelect(key),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    navigate("traces", Object.fromEntries(new FormData(form)));
  });
  const body = rows.length === 0 ? h("p", { class: "empty" }, "No traces match.")
    : table(`${rows.length} most recent matching traces`,
      ["Start", "Root span", "Service", "Duration", "Spans", "Tokens in/out", "Cost", "Energy"],
      rows.map((t) => [
        timeEl(t.start_time),
        h("a", { href: `#/traces/${t.trace_id}`, class: "trace-link" }, t.root_name ?? t.trace_id),
        t.service ?? "–",
        [ms(t.duration_ms), t.has_error ? [" ", badge("error", "error")] : null],
        String(t.spans ?? ""),
        `${num(t.input_tokens)} / ${num(t.output_tokens)}`,
        usd(t.cost_usd),
        num(t.energy_wh, "Wh"),
      ]), { class: "traces" });
  return h("section", {}, h("h1", {}, "Traces"), form, body);
}

function flatten(spans, depth = 0, out = []) {
  for (const span of spans) {
    out.push({ span, depth });
    flatten(span.children ?? [], depth + 1, out);
  }
  return out;
}

// The API's {infrastructure: [...], serving: [...], data: [...]} as one list with layers.
function samplesOf(span) {
  return Object.entries(span.correlated ?? {}).flatMap(([layer, list]) => list.map((s) => ({ layer, ...s })));
}

function detailRow(span, id, colspan) {
  const attrs = Object.entries(span.attributes ?? {});
  const hidden = attrs.filter(([k]) => isContentKey(k)).length;
  const shown = captureOn() ? attrs : attrs.filter(([k]) => !isContentKey(k));
  const samples = samplesOf(span);
  const facts = [
    ["Layer", span.layer], ["Service", `${span.service ?? "–"}${span.service_version ? ` ${span.service_version}` : ""}`],
    ["Model", span.response_model ?? span.request_model ?? "–"], ["Provider", span.provider ?? "–"],
    ["Tokens in / out", `${num(span.input_tokens)} / ${num(span.output_tokens)}`],
    ["Cost", `${usd(span.cost_usd)}${span.cost_source ? ` (${span.cost_source})` : ""}`],
    ["Energy", `${num(span.energy_wh, "Wh")}${span.energy_source ? ` (${span.energy_source})` : ""}`],
    ["Carbon", num(span.co2e_g, "gCO2e")], ["Host", span.host ?? "–"], ["Status", span.status],
  ];
  const sampleTable = samples.length === 0 ? h("p", {}, "No layer samples correlated with this span.")
    : table("Correlated layer samples (mean, min–max over the span)", ["Layer", "Signal", "Value", "Labels"], samples.map((s) => [
      s.layer ?? "", s.signal ?? s.name ?? "",
      s.value !== undefined ? num(s.value, s.unit)
        : s.delta != null ? `+${num(s.delta, s.unit)}` : `${num(s.mean, s.unit)} (${num(s.min)}–${num(s.max)})`,
      [s.host, s.device, ...Object.entries(s.labels ?? {}).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join(" "),
    ]));
  return h("tr", { id, class: "span-detail", hidden: true },
    h("td", { colspan },
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")])),
      logTable(span.logs ?? [], Date.parse(span.start_time), "Events and logs of this span"),
      sampleTable,
      h("details", {}, h("summary", {}, `Attributes (${shown.length})`),
        h("dl", { class: "attrs" }, shown.map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))])),
        !captureOn() && hidden ? h("p", { class: "note" }, `${hidden} content attribute(s) hidden: prompt capture is off.`) : null)));
}

// A span's events and log records (GenAI events, exceptions), time relative to *t0* (ms).
function logTable(logs, t0, caption) {
  if (logs.length === 0) return null;
  const text = (v) => (v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return table(caption, ["At", "Event", "Severity", "Body", "Error"], logs.map((r) => [
    `+${ms(Date.parse(r.time) - t0)}`, r.event_name ?? (r.span_event ? "event" : "log"),
    r.severity_text ?? (r.severity_number ? String(r.severity_number) : ""), text(r.body),
    r.error_type ?? "",
  ]));
}

export async function renderTrace(traceId, _query) {
  const [trace] = await Promise.all([get(`/api/v1/traces/${traceId}`), context.ready]);
  const rows = flatten(trace.spans);
  const t0 = Math.min(...rows.map(({ span }) => Date.parse(span.start_time)));
  const t1 = Math.max(...rows.map(({ span }) => Date.parse(span.start_time) + span.duration_ms));
  const total = Math.max(t1 - t0, 0.001);
  const headers = ["Span", "Layer", "Service", "Start", "Duration", "Tokens", "Cost", "Energy", "Timeline"];
  const tbody = h("tbody");
  rows.forEach(({ span, depth }, i) => {
    const offset = ((Date.parse(span.start_time) - t0) / total) * 100;
    const width = Math.max((span.duration_ms / total) * 100, 0.3);
    const detailId = `span-${i}`;
    const toggle = h("button", { type: "button", class: "span-toggle", "aria-expanded": "false", "aria-controls": detailId,
      style: { "--depth": depth } }, span.name);
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", String(!open));
      document.getElementById(detailId).hidden = open;
    });
    const tokens = span.input_tokens != null || span.output_tokens != null ? `${num(span.input_tokens)} / ${num(span.output_tokens)}` : "";
    const logCount = (span.logs ?? []).length;
    tbody.append(h("tr", { class: `span-row layer-${span.layer} status-${span.status}`, dataset: { spanId: span.span_id } },
      h("th", { scope: "row" }, toggle, logCount ? h("span", { class: "log-count" }, ` · ${logCount} event${logCount > 1 ? "s" : ""}`) : null),
      h("td", {}, span.layer), h("td", {}, span.service ?? ""),
      h("td", { class: "num" }, `+${ms(Date.parse(span.start_time) - t0)}`), h("td", { class: "num" }, ms(span.duration_ms)),
      h("td", { class: "num" }, tokens), h("td", { class: "num" }, span.cost_usd != null ? usd(span.cost_usd) : ""),
      h("td", { class: "num" }, span.energy_wh != null ? num(span.energy_wh, "Wh") : ""),
      h("td", { class: "bar-cell", "aria-hidden": "true" },
        h("div", { class: "bar", style: { "margin-left": `${offset.toFixed(3)}%`, width: `${width.toFixed(3)}%` } }))));
    tbody.append(detailRow(span, detailId, headers.length));
  });
  const sum = (key) => rows.reduce((acc, { span }) => acc + (span[key] ?? 0), 0);
  const waterfall = h("table", { class: "waterfall", id: "waterfall" },
    h("caption", {}, `${trace.span_count} spans over ${ms(total)}, starting ${time(new Date(t0).toISOString())}. Select a span for its details.`),
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col" }, c)))), tbody);
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/traces" }, "Traces"), " / ", traceId),
    h("h1", {}, `Trace ${rows[0]?.span.name ?? traceId}`),
    h("p", { class: "meta" }, `${ms(total)} · ${num(sum("input_tokens"))} tokens in, ${num(sum("output_tokens"))} out · `,
      `${usd(sum("cost_usd"))} · ${num(sum("energy_wh"), "Wh")} · ${num(sum("co2e_g"), "gCO2e")}`),
    waterfall,
    logTable(trace.logs ?? [], t0, "Logs of this trace not tied to one of its spans"));
}
