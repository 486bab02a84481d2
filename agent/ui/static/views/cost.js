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
  { key: "usd", label: "Cost", unit: "USD", fields: ["usd"] },
  { key: "wh", label: "Energy", unit: "Wh", fields: ["energy_wh"] },
  { key: "co2e", label: "Carbon", unit: "gCO2e", fields: ["co2e_g"] },
];

export const pick = (row, fields) => {
  for (const f of fields) if (row[f] !== undefined && row[f] !== null) return row[f];
  return null;
};
const groupName = (row) => row.group ?? "(none)";

function bucketFor(key) {
  return { "1h": "5m", "6h": "15m", "24h": "1h", "7d": "6h", "30d": "1d" }[key] ?? "1h";
}

// Per-group time series from the cost payload's buckets ([{start, groups: [...]}]).
export function costSeries(payload, by, measure) {
  const out = new Map();
  for (const bucket of payload.buckets ?? []) {
    for (const g of bucket.groups ?? []) {
      const name = groupName(g, by);
      if (!out.has(name)) out.set(name, []);
      out.get(name).push([bucket.start, pick(g, measure.fields)]);
    }
  }
  return [...out.entries()].map(([label, points]) => ({ label, points }));
}

function budgetsBlock(payload) {
  if (!payload) return h("p", { class: "empty" }, "Budgets are not available on this agent.");
  const budgets = listOf(payload, "budgets");
  if (budgets.length === 0) return h("p", { class: "empty" }, "No budgets configured ([[budget]] in strata.toml).");
  return table("Budgets this month", ["Budget", "Month", "Limit", "Spent", "Used", "Projected", "State"], budgets.map((b) => {
    const used = b.usd_per_month ? (b.spent_usd / b.usd_per_month) * 100 : null;
    const state = b.over_budget ? "over budget" : b.will_exceed ? "will exceed" : "on track";
    return [`${b.group_by}=${b.value}`, b.month ?? "", usd(b.usd_per_month), usd(b.spent_usd),
      used === null ? "–" : `${num(used)} %`, usd(b.projected_usd),
      h("span", { class: b.over_budget || b.will_exceed ? "over" : "" }, state)];
  }), { class: "budgets" });
}

function rightsizingBlock(payload) {
  if (!payload) return h("p", { class: "empty" }, "Rightsizing is not available on this agent.");
  const findings = listOf(payload, "findings");
  if (findings.length === 0) return h("p", { class: "empty" }, "No rightsizing findings in this range.");
  return table("Rightsizing findings", ["Kind", "Target", "Finding", "Waste or saving", "Energy wasted"], findings.map((f) => [
    f.kind.replace(/_/g, " "),
    [f.service, f.model && f.suggested_model ? `${f.model} → ${f.suggested_model}` : f.model,
      f.host, f.device].filter(Boolean).join(" · ") || "–",
    f.detail ?? "",
    f.saving_usd != null ? `save ${usd(f.saving_usd)}` : f.waste_usd != null ? `waste ${usd(f.waste_usd)}` : "–",
    f.waste_wh != null ? `${num(f.waste_wh, "Wh")}${f.waste_wh_source ? ` (${f.waste_wh_source})` : ""}` : "–",
  ]), { class: "rightsizing" });
}

const share = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`);

// Per service: how many requests carry a cost and a Wh figure, and from which source.
export function coverageBlock(coverage) {
  if (!coverage) return null;
  const rows = [...(coverage.services ?? []), { service: "All services", ...coverage.totals }];
  return table("Coverage: requests with a cost and an energy figure, by source",
    ["Service", "Requests", "With cost", "Token price / GPU time / list-price GPU time / unpriced",
      "With energy", "Measured / estimated / unknown"],
    rows.map((c) => [c.service, num(c.requests), share(c.cost_share),
      `${num(c.cost.token_price)} / ${num(c.cost.gpu_time)} / ${num(c.cost.gpu_time_estimated)} / ${num(c.cost.unpriced)}`,
      share(c.energy_share),
      `${num(c.energy.measured)} / ${num(c.energy.estimated)} / ${num(c.energy.unknown)}`]),
    { class: "coverage" });
}

export async function renderCost(query) {
  const by = GROUPS.includes(query.get("group_by")) ? query.get("group_by") : "team";
  const { key, since, until } = rangeOf(query, "7d");
  const range = { since: iso(since), until: iso(until) };
  const [cost, rightsizing, budgets] = await Promise.all([
    get("/api/v1/cost", { group_by: by, ...range, bucket: bucketFor(key) }),
    maybe("/api/v1/cost/rightsizing", range),
    maybe("/api/v1/budgets"),
  ]);
  const form = h("form", { class: "filters", "aria-label": "Cost breakdown", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "field" }, h("label", { for: "group_by" }, "Group by"),
      h("select", { id: "group_by", name: "group_by" }, GROUPS.map((g) => h("option", { value: g, selected: g === by }, g)))),
    rangeSelect(key));
  form.addEventListener("change", () => navigate("cost", Object.fromEntries(new FormData(form))));
  const groups = listOf(cost, "groups");
  const totals = table(`Totals by ${by}, most expensive first`,
    [by, "Requests", "Tokens in / out", "Cost (USD)", "Energy (Wh)", "of which estimated", "Carbon (gCO2e)"],
    groups.map((g) => [groupName(g, by), num(g.requests), `${num(g.input_tokens)} / ${num(g.output_tokens)}`,
      usd(pick(g, MEASURES[0].fields)), num(pick(g, MEASURES[1].fields)), num(g.energy_wh_estimated),
      num(pick(g, MEASURES[2].fields))]),
    { class: "totals" });
  const charts = h("div", { class: "charts" });
  for (const measure of MEASURES) {
    charts.append(timeChart({ id: `cost-${measure.key}`, title: `${measure.label} by ${by}`, unit: measure.unit,
      series: costSeries(cost, by, measure), range: [since / 1000, until / 1000], syncKey: "cost", height: 170 }).figure);
  }
  const unpriced = cost.totals?.unpriced_requests;
  const estimated = unpriced ? `${num(unpriced)} requests have no price (unknown model); their cost is not counted. ` +
    "Energy for hosted APIs is estimated from per-model coefficients; GPU energy is measured." : null;
  return h("section", {}, h("h1", {}, "Cost & energy"), form,
    totals, estimated ? h("p", { class: "note" }, estimated) : null, coverageBlock(cost.coverage), charts,
    h("section", { "aria-labelledby": "budgets-h" }, h("h2", { id: "budgets-h" }, "Budgets"), budgetsBlock(budgets)),
    h("section", { "aria-labelledby": "rs-h" }, h("h2", { id: "rs-h" }, "Rightsizing"), rightsizingBlock(rightsizing)));
}
