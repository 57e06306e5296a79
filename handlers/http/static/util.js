// DOM and formatting helpers. Text is only ever added as text nodes: bots write the reasoning,
// strategy names and documents this page shows, and none of it may become markup.

/** Build an element: h("td", {className: "num"}, "text", childNode, ...). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, String(value));
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace NODE's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function showError(node, error) {
  node.hidden = !error;
  node.textContent = error ? String(error.message || error) : "";
}

const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const precise = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 6 });

export function fmtNum(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (digits !== undefined) return value.toFixed(digits);
  return Math.abs(value) >= 1 ? number.format(value) : precise.format(value);
}

export function fmtPct(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

/** ISO timestamp -> "2024-05-01 12:00:00" (UTC, as the API gives it). */
export function fmtTime(iso, withSeconds = true) {
  if (!iso) return "—";
  const text = iso.replace("T", " ").replace(/(\.\d+)?Z$/, "");
  return withSeconds ? text : text.slice(0, 16);
}

export function fmtDate(iso) {
  return iso ? iso.slice(0, 10) : "—";
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const days = seconds / 86400;
  if (days >= 1) return `${fmtNum(days, 1)} days`;
  const hours = seconds / 3600;
  return hours >= 1 ? `${fmtNum(hours, 1)} h` : `${Math.round(seconds)} s`;
}

/** Class for a signed number: "pos" / "neg" / "". */
export function sign(value) {
  if (value === null || value === undefined || value === 0) return "";
  return value > 0 ? "pos" : "neg";
}

/** A signed amount: "+12.00", "-5.00"; "—" for none. */
export function money(value) {
  if (value === null || value === undefined) return "—";
  return `${value > 0 ? "+" : ""}${fmtNum(value, 2)}`;
}

// What each outcome status means, for tooltips (core/outcomes.py defines them).
export const OUTCOME_STATUS = {
  open: "an entry none of which is closed yet",
  partial: "an entry part of which is closed",
  closed: "an entry all of which is closed: PnL the exits realized on it, net of fees",
  exit: "a trade that closed quantity: its PnL, net of fees",
};

/** An outcome's status as a badge, or "—" while the hub has not paired the trade. */
export function statusBadge(outcome) {
  const status = outcome && outcome.status;
  return status ? h("span", { className: `outcome ${status}`, title: OUTCOME_STATUS[status] || "" }, status) : "—";
}

/** A realized PnL coloured as a win or a loss; null when there is none. */
export function pnlSpan(pnl) {
  return pnl === null || pnl === undefined ? null : h("span", { className: `pnl ${sign(pnl)}` }, money(pnl));
}

/** A reasoning cell: the first line, with a button revealing the full text on demand. */
export function reasoningCell(text, limit = 90) {
  const full = text || "";
  if (full.length <= limit && !full.includes("\n")) return h("td", { className: "reasoning" }, full);
  const short = h("span", { className: "short" }, `${full.slice(0, limit).split("\n")[0]}…`);
  const long = h("div", { className: "long", hidden: true }, full);
  const toggle = h("button", {
    type: "button", className: "link", "aria-expanded": "false",
    onclick: (event) => {
      event.stopPropagation();
      const open = long.hidden;
      long.hidden = !open;
      short.hidden = open;
      toggle.textContent = open ? "less" : "more";
      toggle.setAttribute("aria-expanded", String(open));
    },
  }, "more");
  return h("td", { className: "reasoning" }, short, long, " ", toggle);
}
