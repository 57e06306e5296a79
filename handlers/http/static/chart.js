// The equity curve against the benchmark, and its drawdown below, as two uPlot charts sharing
// the cursor and the time range. Drag across either to zoom; double-click or "All" to reset.
// And an agent's cumulative realized PnL, one uPlot chart.

import { h } from "./util.js";

const COLORS = { strategy: "#2563eb", benchmark: "#d97706", drawdown: "#dc2626", pnl: "#2563eb" };
const DAY = 86_400;
const RANGES = [["1M", 30 * DAY], ["3M", 91 * DAY], ["6M", 182 * DAY], ["1Y", 365 * DAY]];
const money = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

/** Y ticks with as many decimals as their spacing needs (1,020 / 1,040, not 1K / 1K). */
function valueTicks(u, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step || 1))));
  const format = new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  return ticks.map((t) => format.format(t));
}

/** X ticks in UTC, 24-hour, with the date (and year) where it changes. */
function timeTicks(u, splits, axis, space, incr) {
  let previous = "";
  return splits.map((s) => {
    const iso = new Date(s * 1000).toISOString();
    const [date, year] = [iso.slice(0, 10), iso.slice(0, 4)];
    let label;
    if (incr >= 28 * DAY) label = iso.slice(0, 7);
    else if (incr >= DAY) label = previous.slice(0, 4) === year ? iso.slice(5, 10) : date;
    else label = `${iso.slice(11, 16)}${previous.slice(0, 10) === date ? "" : `\n${date}`}`;
    previous = iso;
    return label;
  });
}

function timeValue(u, v) {
  return v === null ? "—" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ");
}

/** The curve's columns as uPlot data: x (s), strategy, rebased benchmark, drawdown (%). */
export function chartData(curve) {
  const x = curve.timestamp.map((t) => Date.parse(t) / 1000);
  const value = curve.value;
  // Rebase the benchmark to the strategy's value where the benchmark starts, so both lines
  // start together on one axis: the gap between them is the over- or under-performance.
  const first = curve.benchmark.findIndex((b) => b !== null && b > 0);
  const scale = first === -1 ? null : value[first] / curve.benchmark[first];
  const benchmark = curve.benchmark.map((b) => (b === null || scale === null ? null : b * scale));
  let peak = -Infinity;
  const drawdown = value.map((v) => {
    peak = Math.max(peak, v);
    return peak > 0 ? (v / peak - 1) * 100 : null;
  });
  return [x, value, benchmark, drawdown];
}

// One time range for every chart of a backtest: a zoom on one is applied to the others.
let following = false;
function followX(source, key, charts) {
  if (key !== "x" || following) return;
  following = true;
  for (const chart of charts) {
    if (chart !== source) chart.setScale("x", { min: source.scales.x.min, max: source.scales.x.max });
  }
  following = false;
}

function utc(ts) {
  return window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
}

function options(width, height, charts, extra) {
  return {
    width, height, tzDate: utc,
    hooks: { setScale: [(u, key) => followX(u, key, charts)] },
    cursor: { sync: { key: "equity", setSeries: false }, drag: { x: true, y: false } },
    legend: { live: true },
    ...extra,
  };
}

/** Draw the charts into CONTAINER; returns { destroy() }. */
export function drawEquity(container, curve, benchmarkName) {
  const uPlot = window.uPlot;
  const data = chartData(curve);
  const [x] = data;
  const width = Math.max(300, container.clientWidth);
  const hasBenchmark = data[2].some((b) => b !== null);
  const charts = [];
  const main = new uPlot(options(width, 300, charts, {
    title: "Equity",
    scales: { x: { time: true } },
    series: [
      { label: "Time (UTC)", value: timeValue },
      { label: "Strategy", stroke: COLORS.strategy, width: 2, value: (u, v) => (v === null ? "—" : money.format(v)) },
      { label: `${benchmarkName} buy & hold (rebased to the strategy's value)`, stroke: COLORS.benchmark,
        width: 1.5, show: hasBenchmark, spanGaps: false, value: (u, v) => (v === null ? "—" : money.format(v)) },
    ],
    axes: [{ values: timeTicks }, { size: 72, values: valueTicks }],
  }), data.slice(0, 3), container);
  const under = new uPlot(options(width, 140, charts, {
    scales: { x: { time: true } },
    series: [
      { label: "Time (UTC)", value: timeValue },
      { label: "Drawdown", stroke: COLORS.drawdown, fill: "rgba(220, 38, 38, 0.18)", width: 1,
        value: (u, v) => (v === null ? "—" : `${v.toFixed(2)}%`) },
    ],
    axes: [{ values: timeTicks }, { size: 72, values: (u, ticks) => valueTicks(u, ticks).map((t) => `${t}%`) }],
  }), [x, data[3]], container);

  charts.push(main, under);
  const setRange = (min, max) => main.setScale("x", { min, max });

  const first = x[0];
  const last = x[x.length - 1];
  const buttons = [h("button", { type: "button", onclick: () => setRange(first, last) }, "All")];
  for (const [label, span] of RANGES) {
    if (last - first > span) {
      buttons.push(h("button", { type: "button", onclick: () => setRange(last - span, last) }, label));
    }
  }
  container.prepend(h("div", { className: "range" }, h("span", { className: "muted" }, "Range"), ...buttons,
    h("span", { className: "muted hint" }, "drag on the chart to zoom, double-click to reset")));

  const resize = new ResizeObserver(() => {
    const w = Math.max(300, container.clientWidth);
    if (Math.abs(w - main.width) > 4) {
      main.setSize({ width: w, height: 300 });
      under.setSize({ width: w, height: 140 });
    }
  });
  resize.observe(container);
  return {
    main, under,
    destroy() {
      resize.disconnect();
      main.destroy();
      under.destroy();
    },
  };
}

const INTERVAL_SECONDS = { "1h": 3600, "1d": DAY };

/** GET /api/performance/pnl's answer as uPlot data: each interval's cumulative PnL at its end,
 * after a 0 at the first interval's start (nothing was realized before it). */
export function pnlData(series) {
  const step = INTERVAL_SECONDS[series.interval] || DAY;
  const points = series.points;
  if (!points.length) return [[], []];
  const x = [Date.parse(points[0].time) / 1000];
  const y = [0];
  for (const point of points) {
    x.push(Date.parse(point.time) / 1000 + step);
    y.push(point.cumulative_pnl);
  }
  return [x, y];
}

/** Cumulative realized PnL into CONTAINER; returns { update(series), destroy() }. */
export function drawPnl(container, series) {
  const uPlot = window.uPlot;
  const height = 260;
  const width = () => Math.max(300, container.clientWidth);
  const data = pnlData(series);
  const chart = new uPlot({
    width: width(), height, tzDate: utc,
    title: "Cumulative realized PnL",
    padding: [null, 36, null, null], // room for the last time label
    scales: { x: { time: true } },
    cursor: { drag: { x: true, y: false } },
    series: [
      { label: "End of interval (UTC)", value: timeValue },
      { label: "Realized PnL", stroke: COLORS.pnl, fill: "rgba(37, 99, 235, 0.08)", width: 2,
        points: { show: data[0].length <= 60 }, value: (u, v) => (v === null ? "—" : money.format(v)) },
    ],
    axes: [{ values: timeTicks }, { size: 72, values: valueTicks }],
  }, data, container);
  const resize = new ResizeObserver(() => {
    if (Math.abs(width() - chart.width) > 4) chart.setSize({ width: width(), height });
  });
  resize.observe(container);
  return {
    chart,
    update(next) {
      chart.setData(pnlData(next));
    },
    destroy() {
      resize.disconnect();
      chart.destroy();
    },
  };
}
