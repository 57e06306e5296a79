// The dashboard's entry point: tabs, the connection indicator, and the one WebSocket feeding
// the four views. #live/<id> opens a trade's detail over the Live view.

import { initAgents, onOutcomes as agentOutcomes, resync, showAgents } from "./agents.js";
import { initBacktests, onBacktests, showBacktest } from "./backtests.js";
import { initDecisions } from "./decisions.js";
import { initKnowledge, loadDomains } from "./knowledge.js";
import { initLive, onOutcomes as liveOutcomes, onTrades, settled, shownIds, sync } from "./live.js";
import { Stream } from "./stream.js";
import { initTrade, showTrade } from "./trade.js";
import { $ } from "./util.js";

const TABS = ["live", "agents", "backtests", "knowledge"];
const KINDS = ["trades", "backtests", "knowledge", "outcomes"];

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // a hand-edited address; shown as typed
  }
}

function route() {
  const [tab, id, ...rest] = location.hash.replace(/^#/, "").split("/");
  const current = TABS.includes(tab) ? tab : "live";
  for (const name of TABS) {
    $(name).hidden = name !== current;
    document.querySelector(`[data-tab="${name}"]`).setAttribute("aria-current", name === current ? "page" : "false");
  }
  // #live/<trade id>: the trade's detail, over the Live view
  showTrade(current === "live" && id && /^\d+$/.test(id) ? Number(id) : null);
  if (current === "backtests") showBacktest(id && /^\d+$/.test(id) ? Number(id) : null);
  // #agents/<source>/<strategy>, each URI-encoded ("" for none)
  if (current === "agents") showAgents(id !== undefined && rest.length ? { source: decode(id), strategy: decode(rest[0]) } : null);
}

function setStatus(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

function onEvents(events) {
  // A frame may carry several kinds; hand each view its own, in order.
  const by = { trades: [], backtests: [], knowledge: [], outcomes: [] };
  for (const event of events) (by[event.kind] || []).push(event.data);
  if (by.trades.length) onTrades(by.trades);
  if (by.outcomes.length) {
    liveOutcomes(by.outcomes);
    agentOutcomes(by.outcomes);
  }
  if (by.backtests.length) onBacktests(by.backtests);
  if (by.knowledge.length) loadDomains();
}

function onOpen() {
  resync();
  return sync();
}

async function main() {
  const stream = new Stream({ kinds: KINDS, onEvents, onOpen, onStatus: setStatus });
  window.__hub = { stream, get ws() { return stream.ws; }, settled, shownIds };
  initAgents();
  initDecisions();
  initTrade();
  window.addEventListener("hashchange", route);
  route();
  // The first calls find out whether the hub wants a token (and ask for it once) before the
  // WebSocket, which cannot tell why it was refused, is opened.
  await Promise.allSettled([initLive(), initBacktests(), initKnowledge()]);
  stream.connect();
}

main();
