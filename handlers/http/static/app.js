// The dashboard's entry point: tabs, the connection indicator, and the one WebSocket feeding
// the three views.

import { initBacktests, onBacktests, showBacktest } from "./backtests.js";
import { initKnowledge, loadDomains } from "./knowledge.js";
import { initLive, onTrades, settled, shownIds, sync } from "./live.js";
import { Stream } from "./stream.js";
import { $ } from "./util.js";

const TABS = ["live", "backtests", "knowledge"];

function route() {
  const [tab, id] = location.hash.replace(/^#/, "").split("/");
  const current = TABS.includes(tab) ? tab : "live";
  for (const name of TABS) {
    $(name).hidden = name !== current;
    document.querySelector(`[data-tab="${name}"]`).setAttribute("aria-current", name === current ? "page" : "false");
  }
  if (current === "backtests") showBacktest(id && /^\d+$/.test(id) ? Number(id) : null);
}

function setStatus(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

function onEvents(events) {
  // A frame may carry several kinds; hand each view its own, in order.
  const by = { trades: [], backtests: [], knowledge: [] };
  for (const event of events) (by[event.kind] || []).push(event.data);
  if (by.trades.length) onTrades(by.trades);
  if (by.backtests.length) onBacktests(by.backtests);
  if (by.knowledge.length) loadDomains();
}

async function main() {
  const stream = new Stream({ onEvents, onOpen: sync, onStatus: setStatus });
  window.__hub = { stream, get ws() { return stream.ws; }, settled, shownIds };
  window.addEventListener("hashchange", route);
  route();
  // The first calls find out whether the hub wants a token (and ask for it once) before the
  // WebSocket, which cannot tell why it was refused, is opened.
  await Promise.allSettled([initLive(), initBacktests(), initKnowledge()]);
  stream.connect();
}

main();
