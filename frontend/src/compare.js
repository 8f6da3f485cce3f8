// The compare page: curves overlaid per metric (one series per run), params and final
// metrics side by side with differences first, and the snapshot differences.
import { getJSON, runPath } from "./api.js";
import { h, clear, link } from "./dom.js";
import { fmtValue, fmtNum } from "./format.js";
import { MetricChart, chartControls, PALETTE } from "./charts.js";
import { renderDiff } from "./diff.js";
import { statusBadge } from "./runs.js";
import { compareMedia } from "./media.js";

function sideTable(id, rows, runs, fmt, onlyDiff) {
  const sorted = [...rows.filter((r) => r.differs), ...rows.filter((r) => !r.differs)];
  return h("table", { class: "table compare-table", id },
    h("thead", null, h("tr", null, h("th", { text: "Key" }), runs.map((r, i) => h("th", null, h("span", { class: `swatch swatch-${i % PALETTE.length}` }), r.name || r.id)))),
    h("tbody", null, sorted.filter((r) => !onlyDiff || r.differs).map((row) => h("tr", { class: row.differs ? "differs" : "same", "data-key": row.key },
      h("th", null, row.section ? h("span", { class: "muted", text: `${row.section} · ` }) : null, row.key),
      row.values.map((v) => h("td", { class: "mono", text: v === null || v === undefined ? "—" : fmt(v) }))))));
}

export async function comparePage(root, ctx) {
  const ids = (new URLSearchParams(location.search).get("ids") || "").split(",").map((s) => s.trim()).filter(Boolean);
  root.append(h("div", { class: "page-head" }, h("h1", null, "Compare")));
  if (!ids.length) {
    root.append(h("p", { class: "muted", text: "Select runs on the Runs page and press Compare." }));
    ctx.ready();
    return;
  }
  let data;
  try {
    data = await getJSON("/api/compare", { ids: ids.join(",") });
  } catch (err) {
    root.append(h("div", { class: "error big", text: `Could not compare: ${err.message}` }));
    ctx.ready();
    return;
  }
  if (ctx.stale()) return;
  const runs = data.runs;
  root.append(h("div", { class: "card compare-runs" }, runs.map((r, i) => h("div", { class: "compare-run" },
    h("span", { class: `swatch swatch-${i % PALETTE.length}` }),
    link(`/runs/${encodeURIComponent(r.id)}`, r.name || r.id), " ", statusBadge(r),
    h("span", { class: "muted", text: ` ${r.project} · ${r.id}` })))));

  // Curves.
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort((a, b) =>
    (a.startsWith("system/") - b.startsWith("system/")) || a.localeCompare(b));
  const state = { xMode: "step", smoothing: 0, logY: false };
  const cache = new Map();
  const charts = new Map();
  const grid = h("div", { class: "chart-grid", id: "compare-charts" });
  const drawOne = (key) => {
    const per = cache.get(key);
    if (!per) return;
    const traces = [];
    const t0 = [];
    per.forEach((resp, i) => {
      if (resp) {
        traces.push({ label: runs[i].name || runs[i].id, color: PALETTE[i % PALETTE.length], resp });
        t0.push(runs[i].created_at);
      }
    });
    if (traces.length) charts.get(key).draw(traces, { ...state, t0 });
  };
  root.append(h("section", { class: "card" }, h("h2", { text: "Metrics" }), chartControls(state, () => keys.forEach(drawOne)), grid,
    keys.length ? null : h("p", { class: "muted", text: "No metrics." })));
  for (const k of keys) {
    const el = h("div", { class: "chart", "data-key": k });
    grid.append(el);
    charts.set(k, new MetricChart(el, k, "compare"));
  }

  // Tables.
  const onlyDiff = h("input", { type: "checkbox", id: "only-differences" });
  const tables = h("div");
  const fillTables = () => {
    clear(tables);
    tables.append(
      h("h3", { text: "Params" }), sideTable("compare-params", data.params, runs, fmtValue, onlyDiff.checked),
      h("h3", { text: "Metrics (last value)" }), sideTable("compare-metrics", data.metrics, runs, fmtNum, onlyDiff.checked),
      h("h3", { text: "Snapshot" }), sideTable("compare-snapshot", data.snapshot, runs, String, onlyDiff.checked));
  };
  onlyDiff.addEventListener("change", fillTables);
  fillTables();
  root.append(h("section", { class: "card" }, h("h2", { text: "Side by side" }), h("label", { class: "toolbar" }, onlyDiff, " Only differences"), tables));
  const mediaSlot = h("div", null, h("div", { class: "muted", text: "Loading…" }));
  root.append(h("section", { class: "card", id: "section-compare-media" }, h("h2", { text: "Media" }), mediaSlot));
  root.append(h("section", { class: "card", id: "compare-diffs" }, h("h2", { text: "Uncommitted diffs" }),
    runs.map((r, i) => h("details", { class: "diff-details", open: (data.diffs[i] && i < 2) || undefined },
      h("summary", null, h("span", { class: `swatch swatch-${i % PALETTE.length}` }), r.name || r.id, data.diffs[i] ? "" : " (clean)"),
      renderDiff(data.diffs[i])))));

  const mediaJob = compareMedia(runs.slice(0, 2), ctx.onLeave)
    .then((m) => { if (!ctx.stale()) clear(mediaSlot).append(m); })
    .catch((e) => { clear(mediaSlot).append(h("div", { class: "error", text: e.message })); });
  await Promise.all([mediaJob, ...keys.map(async (key) => {
    const width = charts.get(key).pixelWidth();
    const per = await Promise.all(runs.map((r) => (r.metrics && key in r.metrics
      ? getJSON(`${runPath(r.id)}/series`, { key, points: width }).catch(() => null)
      : Promise.resolve(null))));
    if (ctx.stale()) return;
    cache.set(key, per);
    drawOne(key);
  })]);
  if (ctx.stale()) return;
  ctx.ready();
  ctx.onLeave(() => charts.forEach((c) => c.destroy()));
}
