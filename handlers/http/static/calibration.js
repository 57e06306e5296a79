// The calibration chart: the win rate of each confidence bin as a bar, with its counts above it,
// against the diagonal of perfect calibration (win rate = confidence / 100). An SVG built node by
// node (createElementNS, text as text nodes), styled by classes from style.css.

import { fmtNum, fmtPct } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 300;
const MARGIN = { top: 26, right: 16, bottom: 46, left: 52 };
const BAR_GAP = 2; // px between neighbouring bars
const MIN_BAR = 2; // px: a bin whose decisions all lost still shows a bar

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const x = (confidence) => MARGIN.left + (confidence / 100) * (WIDTH - MARGIN.left - MARGIN.right);
const y = (rate) => HEIGHT - MARGIN.bottom - rate * (HEIGHT - MARGIN.top - MARGIN.bottom);

function binText(bin) {
  const range = `Confidence ${fmtNum(bin.low)}–${fmtNum(bin.high)}`;
  if (!bin.n) return `${range}: no closed decisions`;
  const pnl = bin.mean_pnl === null ? "—" : `${bin.mean_pnl > 0 ? "+" : ""}${fmtNum(bin.mean_pnl, 2)}`;
  return `${range}: ${bin.wins} of ${bin.n} won (${fmtPct(bin.win_rate, 0)}), mean PnL ${pnl}`;
}

/** An <svg> of CALIBRATION's bins (GET /api/calibration's answer). */
export function calibrationChart(calibration) {
  const bins = calibration.bins;
  const judged = bins.filter((b) => b.n > 0).length;
  const svg = s("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "calibration-chart", role: "img",
    "aria-label": `Win rate per confidence bin against perfect calibration; ${calibration.n} closed decisions in ${judged} bins`,
  });
  const plot = s("g", { class: "axes" });
  for (const rate of [0, 0.25, 0.5, 0.75, 1]) {
    plot.append(
      s("line", { class: "grid", x1: x(0), x2: x(100), y1: y(rate), y2: y(rate) }),
      s("text", { class: "tick", x: x(0) - 6, y: y(rate) + 4, "text-anchor": "end" }, `${rate * 100}%`));
  }
  const every = bins.length > 10 ? 2 : 1; // 20 bins: every other edge labelled
  bins.forEach((bin, i) => {
    if (i % every === 0) plot.append(s("text", { class: "tick", x: x(bin.low), y: y(0) + 16, "text-anchor": "middle" }, fmtNum(bin.low)));
  });
  plot.append(
    s("text", { class: "tick", x: x(100), y: y(0) + 16, "text-anchor": "middle" }, "100"),
    s("text", { class: "axis-label", x: x(50), y: HEIGHT - 6, "text-anchor": "middle" }, "Confidence (bins of the agent's 0–100)"),
    s("text", { class: "axis-label", x: 14, y: y(0.5), "text-anchor": "middle", transform: `rotate(-90 14 ${y(0.5)})` }, "Win rate"));
  svg.append(plot);

  const bars = s("g", { class: "bars" });
  for (const bin of bins) {
    const left = x(bin.low) + BAR_GAP / 2;
    const width = Math.max(1, x(bin.high) - x(bin.low) - BAR_GAP);
    const middle = left + width / 2;
    const group = s("g", { class: bin.n ? "bin" : "bin empty", "data-low": bin.low, "data-n": bin.n }, s("title", {}, binText(bin)));
    if (bin.n) {
      const top = Math.min(y(bin.win_rate), y(0) - MIN_BAR);
      group.append(
        s("rect", { class: "bar", x: left, y: top, width, height: y(0) - top }),
        s("text", { class: "count", x: middle, y: top - 5, "text-anchor": "middle" }, `${bin.wins}/${bin.n}`));
    } else {
      group.append(s("text", { class: "count none", x: middle, y: y(0) - 5, "text-anchor": "middle" }, "0"));
    }
    bars.append(group);
  }
  svg.append(bars);
  svg.append(s("line", { class: "diagonal", x1: x(0), y1: y(0), x2: x(100), y2: y(1) },
    s("title", {}, "perfect calibration: win rate = confidence / 100")));
  return svg;
}
