// Live trades: newest first (in the order the hub stored them), from the WebSocket, with the
// gap after a reconnect filled from GET /api/trades and every trade shown once (keyed by id).

import { getJson } from "./api.js";
import { $, fill, fmtNum, fmtTime, h, reasoningCell, showError } from "./util.js";

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

function filters() {
  return { asset: $("live-asset").value.trim().toUpperCase(), action: $("live-action").value };
}

function matches(trade, { asset, action }) {
  return (!asset || trade.asset === asset) && (!action || trade.action === action);
}

function renderRow(trade, fresh) {
  const who = [trade.source, trade.strategy].filter(Boolean).join(" / ");
  return h("tr", { className: fresh ? "fresh" : "", "data-id": trade.id },
    h("td", { className: "time" }, fmtTime(trade.timestamp)),
    h("td", {}, trade.asset),
    h("td", {}, h("span", { className: `badge ${trade.action.toLowerCase()}` }, trade.action)),
    h("td", { className: "num" }, fmtNum(trade.price)),
    h("td", { className: "num" }, fmtNum(trade.quantity)),
    h("td", { className: "num" }, fmtNum(trade.confidence, 0)),
    h("td", { className: "muted" }, who || "—"),
    reasoningCell(trade.reasoning));
}

/** Insert TRADES not shown yet at their place (by id, descending); drop the oldest beyond MAX_ROWS. */
function add(trades, fresh) {
  const wanted = filters();
  const body = $("live-rows");
  for (const trade of trades) {
    if (highestId === null || trade.id > highestId) highestId = trade.id;
    if (!assets.has(trade.asset)) {
      assets.add(trade.asset);
      $("live-assets").append(h("option", { value: trade.asset }));
    }
    if (rows.has(trade.id) || !matches(trade, wanted)) continue;
    let at = order.findIndex((id) => id < trade.id);
    if (at === -1) at = order.length;
    const tr = renderRow(trade, fresh);
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
    const body = await getJson("/api/trades", { ...params, limit, cursor });
    add(body.trades, page === 0 && params.after_id !== undefined);
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
