// Agents: one row per source and strategy with what its live trades realized (GET
// /api/performance), sortable by any column; selecting one shows its cumulative PnL, its open
// positions and whether its confidence predicts its outcomes. Outcome events from the WebSocket
// make the view fetch again, at most once per REFRESH_MS, and only while it is shown.

import { getJson } from "./api.js";
import { calibrationChart } from "./calibration.js";
import { drawPnl } from "./chart.js";
import { $, fill, fmtNum, fmtPct, fmtTime, h, showError, sign } from "./util.js";

const REFRESH_MS = 400;
const TEXT_COLUMNS = new Set(["source", "strategy"]);
const state = {
  rows: [], sort: "realized_pnl", order: "desc",
  selected: null, // { source, strategy } or null
  interval: null, // "1h" | "1d" chosen for the selection; null: not chosen yet
  loaded: false, // the table was fetched at least once
};
const stale = { table: true, detail: false };
let timer = null;
let tableCalls = 0;
let detailCalls = 0;
let chart = null;

/** "" for a missing source or strategy: the API's filters cannot tell null from unset either. */
const part = (value) => value ?? "";
const same = (a, b) => part(a.source) === part(b.source) && part(a.strategy) === part(b.strategy);
const visible = () => !$("agents").hidden;

export function agentHash(group) {
  return `#agents/${encodeURIComponent(part(group.source))}/${encodeURIComponent(part(group.strategy))}`;
}

function who(group) {
  return [group.source ?? "(no source)", group.strategy ?? "(no strategy)"].join(" / ");
}

/** Profit factor as shown and sorted: no losing exit makes it unbounded, not unknown. */
function profitFactor(row) {
  if (row.profit_factor !== null) return row.profit_factor;
  return row.exits > 0 && row.win_rate === 1 ? Infinity : null;
}

function sortValue(row, key) {
  if (key === "profit_factor") return profitFactor(row);
  return row[key];
}

function compare(a, b) {
  const [va, vb] = [sortValue(a, state.sort), sortValue(b, state.sort)];
  if (va === null || va === undefined) return vb === null || vb === undefined ? 0 : 1; // unknowns last
  if (vb === null || vb === undefined) return -1;
  const order = state.order === "asc" ? 1 : -1;
  if (TEXT_COLUMNS.has(state.sort)) return order * String(va).localeCompare(String(vb));
  return va === vb ? 0 : order * (va < vb ? -1 : 1);
}

function fmtFactor(row) {
  const value = profitFactor(row);
  if (value === Infinity) return "∞";
  return fmtNum(value, 2);
}

function money(value) {
  if (value === null || value === undefined) return "—";
  return `${value > 0 ? "+" : ""}${fmtNum(value, 2)}`;
}

function row(group) {
  const open = () => { location.hash = agentHash(group); };
  const selected = state.selected && same(group, state.selected);
  return h("tr", {
    tabIndex: 0, className: selected ? "selected" : "",
    "data-source": part(group.source), "data-strategy": part(group.strategy),
    onclick: open, onkeydown: (event) => { if (event.key === "Enter") open(); },
  },
  h("td", { className: group.source === null ? "muted" : "" }, group.source ?? "(none)"),
  h("td", { className: group.strategy === null ? "muted" : "" }, group.strategy ?? "(none)"),
  h("td", { className: `num pnl ${sign(group.realized_pnl)}` }, money(group.realized_pnl)),
  h("td", { className: "num" }, fmtPct(group.win_rate, 1)),
  h("td", { className: "num", title: profitFactor(group) === Infinity ? "no losing exits" : "" }, fmtFactor(group)),
  h("td", { className: `num ${sign(group.expectancy)}` }, money(group.expectancy)),
  h("td", { className: "num" }, group.exits),
  h("td", { className: "num" }, group.open_positions),
  h("td", { className: "num" }, fmtNum(group.fees, 2)));
}

function render() {
  const rows = [...state.rows].sort(compare);
  fill($("ag-rows"), rows.map(row));
  $("ag-empty").hidden = rows.length > 0;
  $("ag-count").textContent = rows.length ? `${rows.length} agent${rows.length === 1 ? "" : "s"}` : "";
  for (const th of document.querySelectorAll("#ag-table th[data-sort]")) {
    const active = th.dataset.sort === state.sort;
    th.setAttribute("aria-sort", active ? (state.order === "asc" ? "ascending" : "descending") : "none");
  }
  renderSummary();
}

export async function loadTable() {
  stale.table = false;
  const call = ++tableCalls;
  try {
    const body = await getJson("/api/performance", { group_by: "source,strategy" });
    if (call !== tableCalls) return; // a later call is under way
    state.rows = body.groups;
    state.loaded = true;
    render();
    showError($("ag-error"), null);
  } catch (error) {
    if (call === tableCalls) showError($("ag-error"), error);
  }
}

// ---- the selected agent ------------------------------------------------------------------

const SUMMARY = [
  ["Realized PnL", "realized_pnl", money, true], ["Exits", "exits", String],
  ["Win rate", "win_rate", (v) => fmtPct(v, 1)], ["Profit factor", null, null],
  ["Expectancy (per exit)", "expectancy", money, true], ["Average win", "avg_win", money, true],
  ["Average loss", "avg_loss", money, true], ["Largest win", "largest_win", money, true],
  ["Largest loss", "largest_loss", money, true], ["Fees (every trade)", "fees", (v) => fmtNum(v, 2)],
  ["Open positions", "open_positions", String],
];

function renderSummary() {
  const box = $("ag-summary");
  if (!box || !state.selected) return;
  const group = state.rows.find((r) => same(r, state.selected));
  if (!group) {
    fill(box, h("p", { className: "muted" }, "No exits or open positions for this agent yet."));
    return;
  }
  fill(box, h("dl", { className: "metrics summary" }, SUMMARY.map(([label, key, format, signed]) =>
    h("div", { className: "metric" },
      h("dt", {}, label),
      key === null
        ? h("dd", {}, fmtFactor(group))
        : h("dd", { className: signed ? sign(group[key]) : "" }, format(group[key]))))));
}

function positionsTable(positions) {
  if (!positions.length) return h("p", { className: "muted" }, "No open positions.");
  return h("div", { className: "table-wrap" }, h("table", { className: "data", id: "ag-positions-table" },
    h("thead", {}, h("tr", {}, ["Asset", "Side", "Quantity", "Avg entry price", "Cost basis", "Opened (UTC)"]
      .map((t, i) => h("th", { className: i >= 2 && i <= 4 ? "num" : "" }, t)))),
    h("tbody", {}, positions.map((p) => h("tr", {},
      h("td", {}, p.asset),
      h("td", {}, h("span", { className: `badge ${p.side === "long" ? "buy" : "sell"}` }, p.side)),
      h("td", { className: "num" }, fmtNum(p.quantity)),
      h("td", { className: "num" }, fmtNum(p.avg_entry_price)),
      h("td", { className: "num" }, fmtNum(p.cost_basis, 2)),
      h("td", { className: "time" }, fmtTime(p.opened_at)))))));
}

function calibrationSection(calibration) {
  const spearman = calibration.spearman;
  const facts = [
    `${calibration.n} closed entr${calibration.n === 1 ? "y" : "ies"} judged`,
    `${calibration.pending} still open`,
    calibration.brier.score === null ? `Brier score — (${calibration.brier.reason})`
      : `Brier score ${fmtNum(calibration.brier.score, 3)} (0 best, 1 worst)`,
    spearman.rho === null ? `Spearman ρ — (${spearman.reason})` : null,
  ].filter(Boolean);
  return [
    calibrationChart(calibration),
    h("p", { className: "legend small muted" },
      h("span", { className: "item" }, h("span", { className: "key bar" }),
        "win rate of the closed entries in each confidence bin (wins / entries above the bar)"),
      h("span", { className: "item" }, h("span", { className: "key diagonal" }),
        "perfect calibration: win rate = confidence / 100")),
    h("p", { className: "verdict", id: "ag-verdict" }, calibration.verdict),
    h("p", { className: "muted small" }, facts.join(" · ")),
  ];
}

function intervalButtons() {
  return h("div", { className: "range" }, h("span", { className: "muted" }, "Interval"),
    [["1h", "hourly"], ["1d", "daily"]].map(([value, label]) => h("button", {
      type: "button", "data-interval": value, "aria-pressed": String(state.interval === value),
      onclick: () => {
        if (state.interval === value) return;
        state.interval = value;
        if (chart) chart.destroy();
        chart = null;
        loadDetail();
      },
    }, label)));
}

/** The PnL series in the chosen interval; before one is chosen, daily unless that gives under
 * three points and hourly gives more. */
async function pnlSeries(filter) {
  if (state.interval) return getJson("/api/performance/pnl", { ...filter, interval: state.interval });
  const daily = await getJson("/api/performance/pnl", { ...filter, interval: "1d" });
  if (daily.points.length >= 3) return daily;
  const hourly = await getJson("/api/performance/pnl", { ...filter, interval: "1h" });
  return hourly.points.length > daily.points.length ? hourly : daily;
}

async function settle(promise, node, draw) {
  try {
    const value = await promise;
    draw(value);
  } catch (error) {
    if (node.isConnected) fill(node, h("p", { className: "error" }, String(error.message || error)));
  }
}

/** Fetch the selected agent's PnL, positions and calibration, and show them. */
export async function loadDetail() {
  stale.detail = false;
  const selected = state.selected;
  if (!selected) return;
  const call = ++detailCalls;
  const filter = { source: part(selected.source), strategy: part(selected.strategy) };
  const current = () => call === detailCalls && state.selected === selected;
  const pnl = pnlSeries(filter);
  const positions = getJson("/api/positions", filter);
  const calibration = getJson("/api/calibration", filter);
  await Promise.all([
    settle(pnl, $("ag-pnl"), (series) => {
      if (!current()) return;
      state.interval = series.interval;
      for (const button of document.querySelectorAll("#ag-interval button")) {
        button.setAttribute("aria-pressed", String(button.dataset.interval === series.interval));
      }
      const plot = $("ag-pnl");
      if (!series.points.length) {
        if (chart) chart.destroy();
        chart = null;
        fill(plot, h("p", { className: "muted" }, "No exits yet: nothing realized to draw."));
      } else if (chart) {
        chart.update(series);
      } else {
        fill(plot);
        chart = drawPnl(plot, series);
      }
      plot.dataset.points = String(series.points.length);
    }),
    settle(positions, $("ag-positions"), (body) => {
      if (current()) fill($("ag-positions"), positionsTable(body.positions));
    }),
    settle(calibration, $("ag-calibration"), (body) => {
      if (current()) fill($("ag-calibration"), calibrationSection(body));
    }),
  ]);
}

/** Show agent SELECTION ({source, strategy}) below the table; null hides the detail. */
function select(selection) {
  const panel = $("ag-detail");
  if (selection && state.selected && same(selection, state.selected) && !panel.hidden) {
    if (stale.detail) loadDetail();
    return;
  }
  if (chart) chart.destroy();
  chart = null;
  state.selected = selection;
  state.interval = null;
  for (const tr of $("ag-rows").children) {
    tr.classList.toggle("selected", Boolean(selection) && same({ source: tr.dataset.source, strategy: tr.dataset.strategy }, selection));
  }
  if (!selection) {
    panel.hidden = true;
    fill(panel);
    return;
  }
  panel.hidden = false;
  const loading = (text) => h("p", { className: "muted" }, text);
  fill(panel,
    h("header", { className: "detail-head" },
      h("h3", {}, who(selection)),
      h("button", { type: "button", className: "link", onclick: () => { location.hash = "#agents"; } }, "close")),
    part(selection.source) && part(selection.strategy) ? null : h("p", { className: "muted small" },
      "Without a source or a strategy this agent cannot be singled out: the chart, positions and "
      + "calibration below cover every agent that matches its other name."),
    h("div", { id: "ag-summary" }),
    h("h4", {}, "Cumulative realized PnL"),
    h("div", { id: "ag-interval" }, intervalButtons()),
    h("div", { className: "chart", id: "ag-pnl" }, loading("Loading PnL…")),
    h("p", { className: "muted small" }, "Each point is the PnL realized up to the end of an interval, net of fees."),
    h("h4", {}, "Open positions"),
    h("div", { id: "ag-positions" }, loading("Loading positions…")),
    h("h4", {}, "Does confidence predict the outcome?"),
    h("div", { id: "ag-calibration", className: "calibration" }, loading("Loading calibration…")));
  renderSummary();
  loadDetail();
}

/** The Agents tab was shown, with SELECTION from the address (or null). */
export function showAgents(selection) {
  if (stale.table || !state.loaded) loadTable();
  select(selection);
}

function refresh() {
  timer = null;
  if (!visible()) return; // stays stale until shown
  if (stale.table) loadTable();
  if (stale.detail) loadDetail();
}

function schedule() {
  if (timer === null) timer = setTimeout(refresh, REFRESH_MS);
}

/** Outcome events from the WebSocket: fetch again, once per burst. */
export function onOutcomes(events) {
  stale.table = true;
  if (state.selected && events.some((event) => same(event, state.selected))) stale.detail = true;
  schedule();
}

/** The WebSocket (re)opened: outcome events may have been missed meanwhile. */
export function resync() {
  stale.table = true;
  if (state.selected) stale.detail = true;
  schedule();
}

export function initAgents() {
  for (const th of document.querySelectorAll("#ag-table th[data-sort]")) {
    th.tabIndex = 0;
    const sortBy = () => {
      if (state.sort === th.dataset.sort) state.order = state.order === "desc" ? "asc" : "desc";
      else Object.assign(state, { sort: th.dataset.sort, order: TEXT_COLUMNS.has(th.dataset.sort) ? "asc" : "desc" });
      render();
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", (event) => { if (event.key === "Enter") sortBy(); });
  }
}
