// Metric charts: uPlot over the server's downsampled series. A chart container is
// `div.chart[data-key]`; once drawn it carries data-points (points drawn), data-total
// (points stored), data-series (one per run) and data-last (the last value drawn).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h, clear } from "./dom.js";
import { fmtNum, fmtAxis, fmtTime, fmtDuration } from "./format.js";

export const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#9333ea", "#475569",
];
const MARKER = "#e11d48";

/** Debiased exponential moving average (as TensorBoard / W&B smooth); nulls stay gaps. */
export function ema(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

function xValues(resp, xMode, t0) {
  if (xMode === "time") return resp.times.slice();
  if (xMode === "relative") return resp.times.map((t) => t - t0);
  return resp.steps.slice();
}

/** Values at the steps listed as non-finite, placed where a marker is visible. */
function markerValues(resp, logY) {
  const nf = resp.nonfinite || {};
  const kinds = new Map();
  for (const s of nf.nan || []) kinds.set(s, "nan");
  for (const s of nf.posinf || []) kinds.set(s, "posinf");
  for (const s of nf.neginf || []) kinds.set(s, "neginf");
  if (!kinds.size) return null;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of resp.values) {
    if (v === null || (logY && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) {
    lo = logY ? 1 : 0;
    hi = logY ? 1 : 0;
  }
  let prev = lo;
  let any = false;
  const out = resp.steps.map((s, i) => {
    const v = resp.values[i];
    if (v !== null && !(logY && v <= 0)) prev = v;
    const kind = kinds.get(s);
    if (!kind) return null;
    any = true;
    return kind === "posinf" ? hi : kind === "neginf" ? lo : prev;
  });
  return any ? out : null;
}

function countNonFinite(resp) {
  const nf = resp.nonfinite || {};
  return {
    nan: (nf.nan || []).length,
    posinf: (nf.posinf || []).length,
    neginf: (nf.neginf || []).length,
  };
}

/** Drops repeated x values (keeps the first) so that uPlot.join gets strictly ascending x. */
function strictlyAscending(x, ...ys) {
  const keep = [];
  for (let i = 0; i < x.length; i++) if (i === 0 || x[i] > x[keep[keep.length - 1]]) keep.push(i);
  if (keep.length === x.length) return [x, ...ys];
  return [keep.map((i) => x[i]), ...ys.map((y) => keep.map((i) => y[i]))];
}

function xAxisLabel(xMode) {
  return xMode === "time" ? "time" : xMode === "relative" ? "relative time" : "step";
}

function fmtX(xMode, v) {
  if (v === null || v === undefined) return "";
  if (xMode === "time") return fmtTime(v);
  if (xMode === "relative") return fmtDuration(v);
  return String(v);
}

export class MetricChart {
  /**
   * @param {HTMLElement} el the `div.chart[data-key]` container
   * @param {string} key the metric key (the title)
   * @param {string} syncKey charts sharing it share the cursor
   */
  constructor(el, key, syncKey, height = 240) {
    this.el = el;
    this.height = height;
    this.key = key;
    this.syncKey = syncKey;
    this.plot = null;
    this.shape = "";
    this.title = h("div", { class: "chart-title" }, h("span", { class: "chart-key", text: key }));
    this.info = h("span", { class: "chart-info" });
    this.title.append(this.info);
    this.body = h("div", { class: "chart-body" });
    this.note = h("div", { class: "chart-note" });
    el.append(this.title, this.body, this.note);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(el);
  }

  /** Links shown in the title (the full series as CSV and JSON). */
  setLinks(links) {
    for (const { label, href } of links) {
      this.title.append(h("a", { class: "chart-link", href, download: "", title: `The whole series as ${label}`, text: label }));
    }
  }

  /** The number of points worth asking the server for: the plot's pixel width. */
  pixelWidth() {
    return Math.max(100, Math.round(this.body.clientWidth || this.el.clientWidth || 600));
  }

  resize() {
    if (!this.plot) return;
    const w = this.pixelWidth();
    if (Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: this.plot.height });
  }

  /**
   * @param {{label: string, color: string, resp: object}[]} traces
   * @param {{xMode: string, smoothing: number, logY: boolean, t0: number[]}} opts
   */
  draw(traces, opts) {
    const { xMode, smoothing, logY } = opts;
    const single = traces.length === 1;
    const series = [{ label: xAxisLabel(xMode), value: (u, v) => fmtX(xMode, v) }];
    const tables = [];
    let anyMarkers = false;
    const counts = { nan: 0, posinf: 0, neginf: 0 };
    traces.forEach((tr, i) => {
      const { resp } = tr;
      const x = xValues(resp, xMode, opts.t0[i] ?? (resp.times[0] || 0));
      let raw = resp.values;
      if (logY) raw = raw.map((v) => (v !== null && v > 0 ? v : null));
      const smooth = ema(raw, smoothing);
      const ys = [smooth];
      series.push({
        label: tr.label,
        stroke: tr.color,
        width: 1.5,
        value: (u, v) => fmtNum(v),
        points: { show: false },
      });
      if (single && smoothing > 0) {
        ys.push(raw);
        series.push({
          label: `${tr.label} (raw)`,
          stroke: tr.color + "55",
          width: 1,
          value: (u, v) => fmtNum(v),
          points: { show: false },
        });
      }
      const markers = markerValues(resp, logY);
      const c = countNonFinite(resp);
      counts.nan += c.nan;
      counts.posinf += c.posinf;
      counts.neginf += c.neginf;
      if (markers) {
        anyMarkers = true;
        ys.push(markers);
        series.push({
          label: single ? "non-finite" : `${tr.label} non-finite`,
          stroke: MARKER,
          fill: MARKER,
          width: 0,
          paths: () => null,
          value: (u, v) => (v === null ? "" : "NaN/inf"),
          points: { show: true, size: 9, width: 1, stroke: MARKER, fill: MARKER },
        });
      }
      tables.push(single ? [x, ...ys] : strictlyAscending(x, ...ys));
    });
    const data = single ? tables[0] : uPlot.join(tables);

    const shape = `${xMode}|${logY}|${series.map((s) => s.label).join("\u0000")}`;
    const width = this.pixelWidth();
    if (this.plot && this.shape === shape) {
      this.plot.setData(data);
    } else {
      if (this.plot) this.plot.destroy();
      clear(this.body);
      this.shape = shape;
      this.plot = new uPlot(
        {
          width,
          height: this.height,
          cursor: { sync: { key: this.syncKey }, drag: { x: true, y: false } },
          scales: { x: { time: xMode === "time" }, y: { distr: logY ? 3 : 1 } },
          axes: [
            {
              stroke: "#475569",
              grid: { stroke: "#e2e8f0" },
              ticks: { stroke: "#cbd5e1" },
              ...(xMode === "relative" ? { values: (u, splits) => splits.map((v) => fmtDuration(v)) } : {}),
              ...(xMode === "step" ? { values: (u, splits) => splits.map((v) => fmtAxis(v)) } : {}),
            },
            {
              stroke: "#475569",
              // Wide enough for the longest tick label, whatever the metric's scale.
              size: (u, values) => Math.max(48, 26 + 7.5 * Math.max(0, ...(values || []).map((t) => String(t).length))),
              grid: { stroke: "#e2e8f0" },
              ticks: { stroke: "#cbd5e1" },
              values: (u, splits) => splits.map((v) => fmtAxis(v)),
            },
          ],
          series,
          legend: { live: true },
        },
        data,
        this.body,
      );
    }
    const points = traces.reduce((n, tr) => n + tr.resp.values.length, 0);
    const total = traces.reduce((n, tr) => n + tr.resp.total, 0);
    const lastResp = traces[traces.length - 1].resp;
    const lastVal = lastResp.values.length ? lastResp.values[lastResp.values.length - 1] : null;
    this.el.dataset.points = String(points);
    this.el.dataset.total = String(total);
    this.el.dataset.series = String(traces.length);
    this.el.dataset.last = lastVal === null ? "" : String(lastVal);
    this.el.classList.toggle("has-nonfinite", anyMarkers);
    const ds = traces.some((tr) => tr.resp.downsampled);
    this.info.textContent = single
      ? `${points.toLocaleString()} of ${total.toLocaleString()} points${ds ? " (downsampled)" : ""}`
      : `${traces.length} runs`;
    const parts = [];
    if (counts.nan) parts.push(`${counts.nan} NaN`);
    if (counts.posinf) parts.push(`${counts.posinf} +inf`);
    if (counts.neginf) parts.push(`${counts.neginf} -inf`);
    this.note.textContent = parts.length ? `Non-finite values (gaps, red markers): ${parts.join(", ")}` : "";
  }

  showError(message) {
    clear(this.body);
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.shape = "";
    this.body.append(h("div", { class: "error", text: message }));
  }

  destroy() {
    this.resizeObserver.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

/** The chart controls shared by the run and compare pages. */
export function chartControls(state, onChange) {
  const xAxis = h(
    "select",
    { id: "x-axis", onchange: () => { state.xMode = xAxis.value; onChange(); } },
    h("option", { value: "step", text: "Step" }),
    h("option", { value: "time", text: "Wall time" }),
    h("option", { value: "relative", text: "Relative time" }),
  );
  xAxis.value = state.xMode;
  const smoothVal = h("span", { class: "smooth-value", text: state.smoothing.toFixed(2) });
  const smoothing = h("input", {
    id: "smoothing", type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing),
    oninput: () => {
      state.smoothing = Number(smoothing.value);
      smoothVal.textContent = state.smoothing.toFixed(2);
      onChange();
    },
  });
  const logY = h("input", { id: "log-y", type: "checkbox", onchange: () => { state.logY = logY.checked; onChange(); } });
  logY.checked = state.logY;
  return h(
    "div",
    { class: "chart-controls" },
    h("label", null, "X axis ", xAxis),
    h("label", null, "Smoothing ", smoothing, smoothVal),
    h("label", null, logY, " Log y"),
    h("span", { class: "hint", text: "Drag to zoom, double-click to reset" }),
  );
}
