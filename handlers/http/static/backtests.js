// Backtests: a sortable, paginated table of runs; selecting one shows its equity curve against
// the benchmark, its metrics with their conventions, and its trade log.

import { getJson } from "./api.js";
import { drawEquity } from "./chart.js";
import {
  $, fill, fmtDate, fmtDuration, fmtNum, fmtPct, fmtTime, h, reasoningCell, showError, sign,
} from "./util.js";

const PAGE = 20;
const TRADES_PER_PAGE = 100;
const CHART_POINTS = 1500;
const state = { sort: "created", order: "desc", offset: 0, total: 0, selected: null };
const fresh = new Set();
let chart = null;
let reloading = null;

const GROUPS = [
  ["From the equity curve", ["total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown"]],
  ["From the trades", ["trades", "win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss",
    "largest_win", "largest_loss", "total_fees", "exposure"]],
  ["Against the benchmark", ["benchmark_return", "excess_return", "alpha", "beta", "correlation",
    "information_ratio", "tracking_error"]],
];
const PERCENT = new Set(["total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure",
  "benchmark_return", "excess_return", "alpha", "tracking_error"]);
const MONEY = new Set(["expectancy", "avg_win", "avg_loss", "largest_win", "largest_loss", "total_fees"]);
// Coloured by sign: returns and PnL, not spreads (volatility) or costs (fees).
const SIGNED = new Set(["total_return", "cagr", "max_drawdown", "benchmark_return", "excess_return", "alpha",
  "expectancy", "avg_win", "avg_loss", "largest_win", "largest_loss"]);
const LABELS = {
  total_return: "Total return", cagr: "CAGR", volatility: "Volatility (ann.)", sharpe: "Sharpe",
  sortino: "Sortino", calmar: "Calmar", max_drawdown: "Max drawdown", trades: "Trades (exits)",
  win_rate: "Win rate", profit_factor: "Profit factor", expectancy: "Expectancy (per exit)",
  avg_win: "Average win", avg_loss: "Average loss", largest_win: "Largest win", largest_loss: "Largest loss",
  total_fees: "Total fees", exposure: "Exposure", benchmark_return: "Benchmark return",
  excess_return: "Excess return", alpha: "Alpha (ann.)", beta: "Beta", correlation: "Correlation",
  information_ratio: "Information ratio", tracking_error: "Tracking error (ann.)",
};

function fmtMetric(name, value) {
  if (value === null || value === undefined) return "—";
  if (PERCENT.has(name)) return fmtPct(value);
  if (MONEY.has(name)) return fmtNum(value, 2);
  if (name === "trades") return String(value);
  return fmtNum(value, 3);
}

function summaryRow(run) {
  const tr = h("tr", {
    tabIndex: 0, "data-id": run.id,
    className: [run.id === state.selected ? "selected" : "", fresh.has(run.id) ? "fresh" : ""].join(" ").trim(),
    onclick: () => { location.hash = `#backtests/${run.id}`; },
    onkeydown: (event) => { if (event.key === "Enter") location.hash = `#backtests/${run.id}`; },
  },
  h("td", { className: "muted" }, run.id),
  h("td", {}, run.strategy),
  h("td", {}, `${fmtDate(run.start)} → ${fmtDate(run.end)}`),
  h("td", { className: `num ${sign(run.total_return)}` }, fmtPct(run.total_return)),
  h("td", { className: "num" }, fmtNum(run.sharpe, 2)),
  h("td", { className: "num neg" }, fmtPct(run.max_drawdown)),
  h("td", { className: "num" }, run.trades),
  h("td", { className: "time" }, fmtTime(run.created_at, false)));
  return tr;
}

export async function loadTable() {
  try {
    const body = await getJson("/api/backtests",
      { sort: state.sort, order: state.order, limit: PAGE, offset: state.offset });
    state.total = body.total;
    if (state.offset > 0 && state.offset >= body.total) {
      state.offset = Math.max(0, Math.floor((body.total - 1) / PAGE) * PAGE);
      return loadTable();
    }
    fill($("bt-rows"), body.backtests.map(summaryRow));
    fresh.clear(); // highlighted once
    const last = Math.min(state.offset + PAGE, state.total);
    $("bt-count").textContent = `${state.total} run${state.total === 1 ? "" : "s"}`;
    $("bt-page").textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "";
    $("bt-prev").disabled = state.offset === 0;
    $("bt-next").disabled = last >= state.total;
    $("bt-empty").hidden = state.total > 0;
    showError($("bt-error"), null);
  } catch (error) {
    showError($("bt-error"), error);
  }
  for (const th of document.querySelectorAll("#bt-table th[data-sort]")) {
    const active = th.dataset.sort === state.sort;
    th.setAttribute("aria-sort", active ? (state.order === "asc" ? "ascending" : "descending") : "none");
  }
}

/** Backtests announced on the WebSocket: refresh the page of the table (once per burst). */
export function onBacktests(runs) {
  for (const run of runs) fresh.add(run.id);
  clearTimeout(reloading);
  reloading = setTimeout(loadTable, 150);
}

function metricsSection(detail) {
  const groups = GROUPS.map(([title, names]) => h("div", { className: "metric-group" },
    h("h4", {}, title === "Against the benchmark" ? `${title} (${detail.benchmark})` : title),
    h("dl", { className: "metrics" }, names.filter((n) => n in detail.metrics).map((name) => {
      const value = detail.metrics[name];
      const reason = detail.metric_reasons[name];
      return h("div", { className: "metric" },
        h("dt", {}, LABELS[name] || name),
        h("dd", { className: SIGNED.has(name) ? sign(value) : "" }, fmtMetric(name, value)),
        reason ? h("dd", { className: "reason" }, reason) : null);
    }))));
  const dd = detail.max_drawdown_detail || {};
  const conv = detail.conventions || {};
  const definitions = String(conv.definitions || "").split(/;\s*/).filter(Boolean);
  return h("section", { className: "metrics-wrap" },
    h("div", { className: "metric-groups" }, groups),
    h("p", { className: "muted" },
      `Max drawdown ${fmtPct(dd.value)}: peak ${fmtTime(dd.peak, false)}, trough ${fmtTime(dd.trough, false)}, `
      + `lasted ${fmtDuration(dd.duration)}, ${dd.recovery ? `recovered ${fmtTime(dd.recovery, false)}` : "not recovered"}.`),
    h("details", { className: "conventions" },
      h("summary", {}, `Conventions: ${fmtNum(conv.periods_per_year)} periods per year (${conv.periods_per_year_source}), `
        + `risk-free rate ${fmtPct(conv.risk_free_rate)}`),
      h("ul", {}, definitions.map((text) => h("li", {}, text)))));
}

function paramsLine(detail) {
  const params = Object.entries(detail.parameters || {}).map(([k, v]) =>
    h("code", { className: "chip" }, `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`));
  return h("p", { className: "params" },
    `${fmtTime(detail.start, false)} → ${fmtTime(detail.end, false)} UTC · initial ${fmtNum(detail.initial_capital)}`
    + ` · final ${fmtNum(detail.final_value)} · `, params.length ? params : "no parameters");
}

function tradeRow(trade) {
  return h("tr", {},
    h("td", { className: "time" }, fmtTime(trade.timestamp)),
    h("td", {}, trade.asset),
    h("td", {}, h("span", { className: `badge ${trade.action.toLowerCase()}` }, trade.action)),
    h("td", { className: "num" }, fmtNum(trade.price)),
    h("td", { className: "num" }, fmtNum(trade.quantity)),
    h("td", { className: "num" }, fmtNum(trade.fee, 2)),
    h("td", { className: `num ${sign(trade.pnl)}` }, trade.pnl === null ? "" : fmtNum(trade.pnl, 2)),
    h("td", { className: "num" }, fmtNum(trade.confidence, 0)),
    reasoningCell(trade.reasoning));
}

function tradeLog(trades) {
  const body = h("tbody", {});
  const more = h("button", { type: "button" });
  let shown = 0;
  const showMore = () => {
    body.append(...trades.slice(shown, shown + TRADES_PER_PAGE).map(tradeRow));
    shown = Math.min(trades.length, shown + TRADES_PER_PAGE);
    more.hidden = shown >= trades.length;
    more.textContent = `Show more (${trades.length - shown} left)`;
  };
  more.addEventListener("click", showMore);
  showMore();
  return h("section", {},
    h("h4", {}, `Trade log (${trades.length} fills; PnL on exits, net of fees)`),
    h("div", { className: "table-wrap" }, h("table", { className: "data", id: "bt-trades" },
      h("thead", {}, h("tr", {}, ["Time (UTC)", "Asset", "Action", "Price", "Quantity", "Fee", "PnL",
        "Confidence", "Reasoning"].map((t, i) => h("th", { className: i >= 3 && i <= 7 ? "num" : "" }, t)))),
      body)),
    more);
}

function openPositions(positions) {
  if (!positions || !positions.length) return null;
  return h("p", { className: "muted" }, "Open at the end: ",
    positions.map((p) => Object.entries(p).map(([k, v]) => `${k} ${typeof v === "number" ? fmtNum(v) : v}`).join(", "))
      .join("; "));
}

/** Show backtest ID below the table (null hides the detail). */
export async function showBacktest(id) {
  state.selected = id;
  for (const tr of $("bt-rows").children) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
  const panel = $("bt-detail");
  if (chart) chart.destroy();
  chart = null;
  if (id === null) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  fill(panel, h("p", { className: "muted" }, `Loading backtest ${id}…`));
  let detail;
  try {
    detail = await getJson(`/api/backtests/${id}`, { points: CHART_POINTS });
  } catch (error) {
    fill(panel, h("p", { className: "error" }, String(error.message)));
    return;
  }
  if (state.selected !== id) return;
  const plot = h("div", { className: "chart", id: "bt-chart" });
  const curve = detail.equity_curve;
  fill(panel,
    h("header", { className: "detail-head" },
      h("h3", {}, `#${detail.id} `, detail.strategy),
      h("button", { type: "button", className: "link", onclick: () => { location.hash = "#backtests"; } }, "close")),
    paramsLine(detail),
    plot,
    h("p", { className: "muted small" }, `${curve.points} points stored`
      + (curve.downsampled ? `, ${curve.timestamp.length} drawn (each bucket's minimum and maximum kept)` : "")
      + `. ${detail.benchmark} is rebased to the strategy's starting value, so the two lines share one axis.`),
    metricsSection(detail),
    openPositions(detail.open_positions),
    tradeLog(detail.trade_log));
  if (curve.timestamp.length >= 2) chart = drawEquity(plot, curve, detail.benchmark);
  else fill(plot, h("p", { className: "muted" }, "Not enough points to draw a curve."));
}

export function initBacktests() {
  for (const th of document.querySelectorAll("#bt-table th[data-sort]")) {
    th.tabIndex = 0;
    const sortBy = () => {
      if (state.sort === th.dataset.sort) state.order = state.order === "desc" ? "asc" : "desc";
      else Object.assign(state, { sort: th.dataset.sort, order: "desc" });
      state.offset = 0;
      loadTable();
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", (event) => { if (event.key === "Enter") sortBy(); });
  }
  $("bt-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadTable(); });
  $("bt-next").addEventListener("click", () => { state.offset += PAGE; loadTable(); });
  return loadTable();
}
