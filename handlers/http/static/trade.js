// A trade's detail, in a dialog over the Live view (#live/<id>): the trade with its outcome and
// its full reasoning, then the earlier live trades reasoned most like it (GET
// /api/trades/{id}/similar), from every source or from its own, and how they turned out.
// Closing the dialog goes back to #live; selecting a similar decision shows that one instead.

import { getJson } from "./api.js";
import { decisionTable, showLag } from "./decisions.js";
import { $, fill, fmtNum, fmtPct, fmtTime, h, money, pnlSpan, statusBadge } from "./util.js";

const K = 20;
const SCOPES = [["all", "all sources"], ["same_source", "its source only"]];
const state = { id: null, scope: "all" };
let tradeCalls = 0;
let similarCalls = 0;

/** The sentence saying how the similar decisions turned out. */
export function summarySentence(summary, scope) {
  const whose = scope === "same_source" ? " from the same source" : "";
  if (!summary.n) return `No earlier trade${whose} was reasoned like this one.`;
  const head = summary.n === 1 ? `The one earlier trade${whose} reasoned like this one`
    : `The ${summary.n} earlier trades${whose} reasoned most like this one`;
  if (!summary.closed) return `${head}: none closed yet.`;
  return `${head}: won ${fmtPct(summary.win_rate, 0)} of ${summary.closed} closed, `
    + `mean PnL ${money(summary.mean_pnl)}.`;
}

function facts(trade) {
  const outcome = trade.outcome || {};
  const pnl = pnlSpan(outcome.realized_pnl);
  const rows = [
    ["Time (UTC)", fmtTime(trade.timestamp)],
    ["Source / strategy", [trade.source, trade.strategy].filter(Boolean).join(" / ") || "—"],
    ["Price", fmtNum(trade.price)], ["Quantity", fmtNum(trade.quantity)], ["Fee", fmtNum(trade.fee, 2)],
    ["Confidence", fmtNum(trade.confidence, 0)],
    ["Outcome", [statusBadge(outcome), pnl && " ", pnl]],
  ];
  return [
    h("dl", { className: "metrics facts" }, rows.map(([label, value]) =>
      h("div", { className: "metric" }, h("dt", {}, label), h("dd", {}, value)))),
    h("p", { className: "reasoning-full", id: "td-reasoning" }, trade.reasoning || "(no reasoning)"),
  ];
}

async function loadTrade() {
  const { id } = state;
  const call = ++tradeCalls;
  try {
    const trade = await getJson(`/api/trades/${id}`);
    if (call !== tradeCalls) return;
    fill($("td-title"), `#${trade.id} `, h("span", { className: `badge ${trade.action.toLowerCase()}` }, trade.action),
      ` ${trade.asset}`);
    fill($("td-trade"), facts(trade));
  } catch (error) {
    if (call === tradeCalls) fill($("td-trade"), h("p", { className: "error" }, String(error.message || error)));
  }
}

async function loadSimilar() {
  const { id, scope } = state;
  const call = ++similarCalls;
  const box = $("td-similar");
  box.setAttribute("aria-busy", "true");
  try {
    const body = await getJson(`/api/trades/${id}/similar`, { k: K, scope });
    if (call !== similarCalls) return;
    $("td-summary").textContent = summarySentence(body.summary, scope);
    showLag($("td-lag"), body.index);
    fill(box, body.results.length ? decisionTable(body.results, "td-similar-table") : null);
  } catch (error) {
    if (call !== similarCalls) return;
    $("td-summary").textContent = "";
    fill(box, h("p", { className: "error" }, String(error.message || error)));
  } finally {
    if (call === similarCalls) box.removeAttribute("aria-busy");
  }
}

function scopeButtons() {
  return h("div", { className: "range", id: "td-scope" }, h("span", { className: "muted" }, "From"),
    SCOPES.map(([value, label]) => h("button", {
      type: "button", "data-scope": value, "aria-pressed": String(state.scope === value),
      onclick: () => {
        if (state.scope === value) return;
        state.scope = value;
        for (const button of document.querySelectorAll("#td-scope button")) {
          button.setAttribute("aria-pressed", String(button.dataset.scope === value));
        }
        loadSimilar();
      },
    }, label)));
}

/** Show trade ID in the dialog (null closes it). */
export function showTrade(id) {
  const dialog = $("trade-dialog");
  state.id = id;
  tradeCalls += 1; // answers for another trade are dropped
  similarCalls += 1;
  if (id === null) {
    if (dialog.open) dialog.close();
    return;
  }
  const loading = (text) => h("p", { className: "muted" }, text);
  fill(dialog,
    h("header", { className: "detail-head" },
      h("h3", { id: "td-title" }, `Trade #${id}`),
      h("button", { type: "button", className: "link", onclick: () => dialog.close() }, "close")),
    h("div", { id: "td-trade" }, loading("Loading the trade…")),
    h("h4", {}, "Similar past decisions"),
    scopeButtons(),
    h("p", { className: "verdict", id: "td-summary", "aria-live": "polite" }),
    h("p", { className: "muted small", id: "td-lag", hidden: true }),
    h("div", { id: "td-similar" }, loading("Looking for similar decisions…")));
  if (!dialog.open) dialog.showModal();
  loadTrade();
  loadSimilar();
}

export function initTrade() {
  const dialog = $("trade-dialog");
  // Escape, the close button or a click beside the dialog: back to the Live view.
  dialog.addEventListener("close", () => {
    if (/^#live\/\d+$/.test(location.hash)) location.hash = "#live";
  });
  dialog.addEventListener("click", (event) => {
    const box = dialog.getBoundingClientRect();
    const beside = event.clientX < box.left || event.clientX > box.right
      || event.clientY < box.top || event.clientY > box.bottom;
    if (event.target === dialog && beside) dialog.close();
  });
}
