// Cost & energy: USD, Wh and gCO2e by team, service or model over time, budgets, and the
// rightsizing findings.

import { get, iso, maybe } from "../api.js";
import { timeChart } from "../charts.js";
import { h, num, table, usd } from "../dom.js";
import { navigate } from "../state.js";
import { listOf } from "./incidents.js";
import { rangeOf, rangeSelect } from "./services.js";

const GROUPS = ["team", "service", "model"];
export const MEASURES = [
  { key: "usd", label: "Cost", unit: "USD", fields: ["cost_usd", "usd"] },
  { key: "wh", label: "Energy", unit: "Wh", fields: ["energy_wh", "wh"] },
  { key: "co2e", label: "Carbon", unit: "gCO2e", fields: ["co2e_g", "gco2e", "co2e"] },
];

export const pick = (row, fields) => {
  for (const f of fields) if (row[f] !== undefined && row[f] !== null) return row[f];
  return null;
};
const groupName = (row, by) => row.key ?? row.group ?? row[by] ?? row.value ?? "(none)";

function bucketFor(key) {
  return { "1h": "5m", "6h": "15m", "24h": "1h", "7d": "6h", "30d": "1d" }[key] ?? "1h";
}

// Per-group time series from the cost payload, whichever of its shapes it uses.
export function costSeries(payload, by, measure) {
  const out = new Map();
  const add = (group, t, v) => {
    if (!out.has(group)) out.set(group, []);
    out.get(group).push([t, v]);
  };
  for (const s of payload.series ?? []) {
    for (const p of s.points ?? []) {
      const value = Array.isArray(p) ? p[1] : pick(p, measure.fields);
      add(groupName(s, by), Array.isArray(p) ? p[0] : p.time ?? p.bucket, Array.isArray(p) ? value : value);
    }
  }
  for (const b of payload.buckets ?? []) {
    if (Array.isArray(b.groups)) for (const g of b.groups) add(groupName(g, by), b.time ?? b.start, pick(g, measure.fields));
    else add(groupName(b, by), b.time ?? b.start ?? b.bucket, pick(b, measure.fields));
  }
  return [...out.entries()].map(([label, points]) => ({ label, points }));
}

function budgetsBlock(budgets) {
  if (budgets.length === 0) return h("p", { class: "empty" }, "No budgets configured ([[budget]] in strata.toml).");
  return table("Budgets this month", ["Group", "Budget", "Spent", "Used", "Forecast"], budgets.map((b) => {
    const limit = b.usd_per_month ?? b.budget_usd ?? b.limit_usd;
    const spent = b.spent_usd ?? b.usd ?? b.cost_usd;
    const used = limit ? (spent / limit) * 100 : null;
    return [`${b.group_by ?? ""}=${b.value ?? b.key ?? ""}`, usd(limit), usd(spent),
      h("span", { class: used !== null && used >= 100 ? "over" : "" }, used === null ? "–" : `${num(used)} %`),
      usd(b.forecast_usd ?? b.projected_usd)];
  }), { class: "budgets" });
}

function rightsizingBlock(payload) {
  const findings = listOf(payload, "findings");
  if (!payload) return h("p", { class: "empty" }, "Rightsizing is not available on this agent.");
  if (findings.length === 0) return h("p", { class: "empty" }, "No rightsizing findings.");
  return table("Rightsizing findings", ["Target", "Finding", "Suggestion", "Saving / month"], findings.map((f) => [
    f.service ?? f.host ?? f.target ?? f.model ?? "–", f.summary ?? f.kind ?? f.finding ?? "",
    f.suggestion?.detail ?? f.suggestion ?? f.detail ?? "", usd(f.savings_usd_per_month ?? f.saving_usd_per_month ?? f.monthly_savings_usd),
  ]), { class: "rightsizing" });
}

export async function renderCost(query) {
  const by = GROUPS.includes(query.get("group_by")) ? query.get("group_by") : "team";
  const { key, since, until } = rangeOf(query, "7d");
  const range = { since: iso(since), until: iso(until) };
  const [cost, rightsizing] = await Promise.all([
    get("/api/v1/cost", { group_by: by, ...range, bucket: bucketFor(key) }),
    maybe("/api/v1/cost/rightsizing", range),
  ]);
  const form = h("form", { class: "filters", "aria-label": "Cost breakdown", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "field" }, h("label", { for: "group_by" }, "Group by"),
      h("select", { id: "group_by", name: "group_by" }, GROUPS.map((g) => h("option", { value: g, selected: g === by }, g)))),
    rangeSelect(key));
  form.addEventListener("change", () => navigate("cost", Object.fromEntries(new FormData(form))));
  const groups = listOf(cost, "groups");
  const totals = table(`Totals by ${by}`, [by, "Requests", "Tokens in / out", "Cost (USD)", "Energy (Wh)", "Carbon (gCO2e)"],
    groups.map((g) => [groupName(g, by), num(g.requests ?? g.spans), `${num(g.input_tokens)} / ${num(g.output_tokens)}`,
      usd(pick(g, MEASURES[0].fields)), num(pick(g, MEASURES[1].fields)), num(pick(g, MEASURES[2].fields))]),
    { class: "totals" });
  const charts = h("div", { class: "charts" });
  for (const measure of MEASURES) {
    charts.append(timeChart({ id: `cost-${measure.key}`, title: `${measure.label} by ${by}`, unit: measure.unit,
      series: costSeries(cost, by, measure), range: [since / 1000, until / 1000], syncKey: "cost", height: 170 }).figure);
  }
  const estimated = cost.notes ?? cost.note ?? (cost.estimated ? "Some energy figures are estimates (hosted APIs)." : null);
  return h("section", {}, h("h1", {}, "Cost & energy"), form,
    totals, estimated ? h("p", { class: "note" }, estimated) : null, charts,
    h("section", { "aria-labelledby": "budgets-h" }, h("h2", { id: "budgets-h" }, "Budgets"), budgetsBlock(listOf(cost, "budgets"))),
    h("section", { "aria-labelledby": "rs-h" }, h("h2", { id: "rs-h" }, "Rightsizing"), rightsizingBlock(rightsizing)));
}
