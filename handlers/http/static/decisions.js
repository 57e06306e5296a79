// Decision memory, in the Live view: search past decisions by what their reasoning says (GET
// /api/trades/search), best first, filtered by outcome and kind. Selecting a live decision
// opens its detail (#live/<id>, trade.js); a backtest's, its backtest (#backtests/<id>).
// The table of decisions is shared with the detail's similar decisions.

import { getJson } from "./api.js";
import { $, fill, fmtNum, fmtTime, h, pnlSpan, reasoningCell, showError, statusBadge } from "./util.js";

const K = 20;
const COLUMNS = ["#", "Time (UTC)", "Kind", "Source / strategy", "Asset", "Action", "Confidence",
  "Outcome", "PnL", "Reasoning"];
const NUMERIC = new Set(["#", "Confidence", "PnL"]);
let searches = 0; // the latest search; older answers are dropped

/** Where selecting DECISION leads. */
export function decisionHash(decision) {
  return decision.kind === "backtest" ? `#backtests/${decision.backtest_id}` : `#live/${decision.id}`;
}

function decisionRow(decision, rank) {
  const open = () => { location.hash = decisionHash(decision); };
  const outcome = decision.outcome || {};
  const who = [decision.source, decision.strategy].filter(Boolean).join(" / ");
  const backtest = decision.kind === "backtest";
  return h("tr", {
    tabIndex: 0, "data-id": decision.id, "data-kind": decision.kind,
    onclick: open, onkeydown: (event) => { if (event.key === "Enter") open(); },
  },
  h("td", { className: "num muted", title: `relevance score ${decision.score.toFixed(4)}` }, rank),
  h("td", { className: "time" }, fmtTime(decision.timestamp)),
  h("td", {}, backtest ? h("span", { className: "badge" }, `backtest #${decision.backtest_id}`) : "live"),
  h("td", { className: "muted" }, who || "—"),
  h("td", {}, decision.asset),
  h("td", {}, h("span", { className: `badge ${decision.action.toLowerCase()}` }, decision.action)),
  h("td", { className: "num" }, fmtNum(decision.confidence, 0)),
  h("td", { className: "outcome-cell", "data-status": outcome.status || "" }, statusBadge(outcome)),
  h("td", { className: "num pnl-cell" }, pnlSpan(outcome.realized_pnl) || "—"),
  reasoningCell(decision.reasoning));
}

/** A table of DECISIONS, best first; ID names it. */
export function decisionTable(decisions, id) {
  return h("div", { className: "table-wrap" }, h("table", { className: "data selectable decisions", id },
    h("thead", {}, h("tr", {}, COLUMNS.map((t) => h("th", { className: NUMERIC.has(t) ? "num" : "" }, t)))),
    h("tbody", {}, decisions.map((d, i) => decisionRow(d, i + 1)))));
}

/** Say, in NODE, how many trades the reasoning index has not embedded yet (nothing when none). */
export function showLag(node, index) {
  const behind = index ? index.trades_behind : 0;
  node.hidden = !behind;
  node.textContent = behind ? `${behind} trade${behind === 1 ? "" : "s"} not yet searchable by meaning.` : "";
}

async function search() {
  const q = $("dm-q").value.trim();
  if (!q) return;
  const call = ++searches;
  const box = $("dm-results");
  box.setAttribute("aria-busy", "true");
  const outcome = $("dm-outcome").value;
  const kind = $("dm-kind").value;
  try {
    const body = await getJson("/api/trades/search", { q, k: K, outcome, kind });
    if (call !== searches) return;
    const n = body.results.length;
    fill(box, n ? decisionTable(body.results, "dm-table") : null);
    Object.assign(box.dataset, { outcome, kind }); // what is shown (for tests and debugging)
    $("dm-info").textContent = n
      ? `${n} decision${n === 1 ? "" : "s"}, best first. Select one for its similar past decisions.`
      : `No decision found${outcome || kind ? " with these filters" : ""}. Try other words.`;
    showLag($("dm-lag"), body.index);
    showError($("dm-error"), null);
  } catch (error) {
    if (call !== searches) return;
    fill(box);
    $("dm-info").textContent = "";
    showError($("dm-error"), error);
  } finally {
    if (call === searches) {
      box.removeAttribute("aria-busy");
      $("dm-info").hidden = false;
      $("dm-clear").hidden = false;
    }
  }
}

function clear() {
  searches += 1; // an answer still on its way is dropped
  $("dm-q").value = "";
  fill($("dm-results"));
  for (const id of ["dm-info", "dm-lag", "dm-error", "dm-clear"]) $(id).hidden = true;
  $("dm-q").focus();
}

export function initDecisions() {
  $("dm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  for (const id of ["dm-outcome", "dm-kind"]) {
    $(id).addEventListener("change", () => { if ($("dm-q").value.trim()) search(); });
  }
  $("dm-clear").addEventListener("click", clear);
}
