// Live trades: newest first (in the order the hub stored them), from the WebSocket, with the
// gap after a reconnect filled from GET /api/trades and every trade shown once (keyed by id).
// Each row shows the trade's outcome once the hub has paired it, updated in place by the
// outcome events; a catch-up also refreshes the outcomes of the rows already shown. Selecting a
// row opens the trade's detail (#live/<id>, trade.js).

import { getJson } from "./api.js";
import {
  $, fill, fmtNum, fmtTime, h, OUTCOME_STATUS, pnlSpan, reasoningCell, showError, statusBadge,
} from "./util.js";

const MAX_ROWS = 500;
const FIRST_PAGE = 200;
const PAGE = 500;
const MAX_GAP_PAGES = 20;
// Catch-up asks for what was stored after the highest id seen. Ids follow commit order on one
// writer; with several hub instances on PostgreSQL a batch may commit after one with higher
// ids, hence the slack. Overlap is harmless: rows are deduplicated by id.
const GAP_SLACK_IDS = 10_000;

const rows = new Map(); // id -> <tr>
let order = []; // ids, descending
let highestId = null; // the highest trade id seen
const assets = new Set();
// trade id -> { outcome, at }: the latest outcome known, and when (performance.now()) an outcome
// event told it. Kept for trades not shown too, as an outcome may arrive before its trade.
const outcomes = new Map();
const MAX_OUTCOMES = 5000;

function filters() {
  return { asset: $("live-asset").value.trim().toUpperCase(), action: $("live-action").value };
}

function matches(trade, { asset, action }) {
  return (!asset || trade.asset === asset) && (!action || trade.action === action);
}

/** The outcome cell's content: status, and the realized PnL coloured as a win or a loss. */
function outcomeCell(td, outcome) {
  const status = outcome && outcome.status;
  const pnl = outcome ? outcome.realized_pnl : null;
  td.dataset.status = status || "";
  td.title = status ? OUTCOME_STATUS[status] || "" : "not paired yet";
  fill(td, statusBadge(outcome), pnl === null || pnl === undefined ? null : " ", pnlSpan(pnl));
  return td;
}

function remember(id, outcome, at) {
  outcomes.delete(id); // re-inserted last: the oldest entries are the first dropped
  outcomes.set(id, { outcome, at });
  if (outcomes.size > MAX_OUTCOMES) outcomes.delete(outcomes.keys().next().value);
}

/** Take TRADE's outcome as of a REST answer asked for at ASKED (null: a trade event, which was
 * sent before any outcome), unless an outcome event since then told something newer. */
function learn(trade, asked) {
  const known = outcomes.get(trade.id);
  if (trade.outcome && trade.outcome.status && (!known || (asked !== null && known.at <= asked))) {
    remember(trade.id, trade.outcome, asked ?? -Infinity);
  }
  return outcomes.has(trade.id) ? outcomes.get(trade.id).outcome : null;
}

function renderRow(trade, fresh, outcome) {
  const who = [trade.source, trade.strategy].filter(Boolean).join(" / ");
  const open = () => { location.hash = `#live/${trade.id}`; }; // its detail: trade.js
  return h("tr", {
    className: fresh ? "fresh" : "", "data-id": trade.id, tabIndex: 0,
    onclick: open, onkeydown: (event) => { if (event.key === "Enter") open(); },
  },
    h("td", { className: "time" }, fmtTime(trade.timestamp)),
    h("td", {}, trade.asset),
    h("td", {}, h("span", { className: `badge ${trade.action.toLowerCase()}` }, trade.action)),
    h("td", { className: "num" }, fmtNum(trade.price)),
    h("td", { className: "num" }, fmtNum(trade.quantity)),
    h("td", { className: "num" }, fmtNum(trade.confidence, 0)),
    outcomeCell(h("td", { className: "num outcome-cell" }), outcome),
    h("td", { className: "muted" }, who || "—"),
    reasoningCell(trade.reasoning));
}

/** Insert TRADES not shown yet at their place (by id, descending); drop the oldest beyond MAX_ROWS.
 * ASKED: when the REST call that answered them was made (null for trades from the WebSocket). */
function add(trades, fresh, asked = null) {
  const wanted = filters();
  const body = $("live-rows");
  for (const trade of trades) {
    if (highestId === null || trade.id > highestId) highestId = trade.id;
    if (!assets.has(trade.asset)) {
      assets.add(trade.asset);
      $("live-assets").append(h("option", { value: trade.asset }));
    }
    const outcome = learn(trade, asked);
    if (rows.has(trade.id)) {
      if (outcome) outcomeCell(rows.get(trade.id).querySelector(".outcome-cell"), outcome);
      continue;
    }
    if (!matches(trade, wanted)) continue;
    let at = order.findIndex((id) => id < trade.id);
    if (at === -1) at = order.length;
    const tr = renderRow(trade, fresh, outcome);
    body.insertBefore(tr, at < order.length ? rows.get(order[at]) : null);
    order.splice(at, 0, trade.id);
    rows.set(trade.id, tr);
  }
  while (order.length > MAX_ROWS) {
    const id = order.pop();
    rows.get(id).remove();
    rows.delete(id);
  }
  $("live-empty").hidden = order.length > 0;
  $("live-count").textContent = order.length ? `${order.length} shown` : "";
}

async function fetchPages(params, maxPages, limit = PAGE) {
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const asked = performance.now();
    const body = await getJson("/api/trades", { ...params, limit, cursor });
    add(body.trades, page === 0 && params.after_id !== undefined, asked);
    cursor = body.next_cursor;
    if (!cursor) return;
  }
}

let syncing = Promise.resolve(); // the latest catch-up, for settled()

/** Catch up with what the hub stored while the page was not listening. */
export function sync() {
  syncing = catchUp();
  return syncing;
}

/** Resolves once the latest catch-up has been shown (for tests and debugging). */
export function settled() {
  return syncing;
}

async function catchUp() {
  const { asset, action } = filters();
  try {
    if (highestId === null) await fetchPages({ asset, action }, 1, FIRST_PAGE);
    else await fetchPages({ asset, action, after_id: Math.max(0, highestId - GAP_SLACK_IDS) }, MAX_GAP_PAGES);
    showError($("live-error"), null);
  } catch (error) {
    showError($("live-error"), error);
  }
}

/** Trades announced on the WebSocket. */
export function onTrades(trades) {
  add(trades, true);
}

/** Outcome events: {trade_id, source, strategy, asset, outcome}; shown rows change in place. */
export function onOutcomes(events) {
  const at = performance.now();
  for (const event of events) {
    remember(event.trade_id, event.outcome, at);
    const tr = rows.get(event.trade_id);
    if (tr) outcomeCell(tr.querySelector(".outcome-cell"), event.outcome);
  }
}

function reset() {
  fill($("live-rows"));
  rows.clear();
  order = [];
  highestId = null;
  sync();
}

export function initLive() {
  let typing = null;
  $("live-asset").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(reset, 300);
  });
  $("live-action").addEventListener("change", reset);
  return sync();
}

/** What the page shows, for tests and debugging. */
export function shownIds() {
  return [...order];
}
