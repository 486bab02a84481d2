// Small DOM and formatting helpers. Elements are built with textContent only, never
// innerHTML, so nothing the API returns can inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    // CSSOM, not a style attribute: the console's CSP allows no inline styles.
    else if (key === "style") for (const [p, v] of Object.entries(value)) el.style.setProperty(p, String(v));
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// A table with a caption and column headers; rows are arrays of cells (nodes or text).
export function table(caption, headers, rows, attrs = {}) {
  return h("table", attrs,
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((col) => h("th", { scope: "col" }, col)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

export function badge(kind, text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

const NUMBER = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
const SMALL = new Intl.NumberFormat("en", { maximumSignificantDigits: 3 });

export function num(value, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  const text = abs !== 0 && abs < 0.01 ? SMALL.format(value) : NUMBER.format(value);
  return unit ? `${text} ${unit}` : text;
}

const AXIS = new Intl.NumberFormat("en", { maximumSignificantDigits: 3 });
const COMPACT = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });

// Tick labels: three significant digits, compact above a thousand (1.2K, 3.4M).
export function tick(value) {
  if (value === null || value === undefined) return "";
  return Math.abs(value) >= 1000 ? COMPACT.format(value) : AXIS.format(value);
}

export function usd(value) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) < 0.01 && value !== 0 ? `$${SMALL.format(value)}` : `$${NUMBER.format(value)}`;
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1000 ? `${NUMBER.format(value / 1000)} s` : `${NUMBER.format(value)} ms`;
}

export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function timeEl(iso, text = time(iso)) {
  return h("time", { datetime: iso ?? "" }, text);
}

// Age relative to *now* (ms since epoch), e.g. "3 h" or "12 d".
export function age(iso, now = Date.now()) {
  if (!iso) return "–";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function pct(baseline, current) {
  if (!baseline) return "";
  const change = ((current - baseline) / Math.abs(baseline)) * 100;
  return `${change >= 0 ? "+" : ""}${NUMBER.format(change)} %`;
}
