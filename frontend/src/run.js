// The run page: overview, params and outputs, metric and system charts, the output log,
// artifacts, the reproducibility snapshot, lineage and the reproduce command. While the
// run is live it polls every second: charts refetch when the run's metrics moved and the
// log appends the lines after its cursor.
import { getJSON, runPath } from "./api.js";
import { h, clear, link, debounce } from "./dom.js";
import { fmtNum, fmtValue, fmtTime, fmtDuration, fmtSize, shortDigest } from "./format.js";
import { MetricChart, chartControls, PALETTE } from "./charts.js";
import { drawGraph } from "./graph.js";
import { renderDiff } from "./diff.js";
import { statusBadge } from "./runs.js";
import { mediaSection } from "./media.js";

const LOG_KEEP = 5000;

function kvTable(id, obj, emptyText) {
  const entries = Object.entries(obj || {});
  const t = h("table", { class: "table kv", id });
  if (!entries.length) return h("div", { id, class: "kv-empty" }, h("p", { class: "muted", text: emptyText }));
  t.append(h("tbody", null, entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) =>
    h("tr", null, h("th", { text: k }), h("td", { class: "mono", text: fmtValue(v) })))));
  return t;
}

function section(id, title, ...children) {
  return h("section", { class: "card", id: `section-${id}` }, h("h2", { text: title }), ...children);
}

export function copyButton(getText) {
  const b = h("button", { class: "btn btn-small copy-button", type: "button" }, "Copy");
  b.addEventListener("click", async () => {
    const text = getText();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const ta = h("textarea", { class: "offscreen" });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    b.textContent = "Copied";
    setTimeout(() => { b.textContent = "Copy"; }, 1200);
  });
  return b;
}

function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = v;
  }
  return out;
}

function renderSnapshot(snap) {
  const box = h("div", { id: "snapshot" });
  const git = snap?.git;
  box.append(h("h3", { text: "Git" }));
  if (git) {
    const facts = { commit: git.commit, branch: git.branch, remote: git.remote, dirty: git.dirty };
    if (git.root) facts.root = git.root;
    if (git.untracked?.length) facts.untracked = git.untracked.join(", ");
    box.append(kvTable("snapshot-git", facts, ""));
    box.append(h("h4", { text: "Uncommitted diff" }));
    const d = renderDiff(git.diff);
    d.id = "diff";
    box.append(d);
  } else {
    box.append(h("p", { class: "muted", text: "Not in a git repository." }), h("div", { id: "diff", class: "diff" }));
  }
  const code = snap?.code;
  box.append(h("h3", { text: "Code" }));
  if (code) {
    const rest = { ...code };
    delete rest.argv;
    box.append(kvTable("snapshot-code", rest, ""));
    if (code.argv) box.append(h("pre", { class: "cmd", text: code.argv.join(" ") }));
  } else box.append(h("p", { class: "muted", text: "Not recorded." }));

  const env = snap?.environment;
  box.append(h("h3", { text: "Environment" }));
  if (env) {
    const rest = { ...env };
    delete rest.packages;
    box.append(kvTable("snapshot-env", flatten(rest), ""));
    const pkgs = Object.entries(env.packages || {}).sort(([a], [b]) => a.localeCompare(b));
    if (pkgs.length) {
      const filter = h("input", { type: "search", class: "input input-small", placeholder: `Filter ${pkgs.length} packages` });
      const tbody = h("tbody");
      const fill = () => {
        clear(tbody);
        const q = filter.value.toLowerCase();
        for (const [n, v] of pkgs) if (!q || n.toLowerCase().includes(q)) tbody.append(h("tr", null, h("td", { text: n }), h("td", { class: "mono", text: String(v) })));
      };
      filter.addEventListener("input", fill);
      fill();
      box.append(h("details", { class: "packages" }, h("summary", { text: `Packages (${pkgs.length})` }), filter,
        h("div", { class: "scroll-box" }, h("table", { class: "table compact", id: "snapshot-packages" }, tbody))));
    }
  } else box.append(h("p", { class: "muted", text: "Not recorded." }));

  box.append(h("h3", { text: "Hardware" }));
  box.append(snap?.hardware ? kvTable("snapshot-hardware", flatten(snap.hardware), "") : h("p", { class: "muted", text: "Not recorded." }));
  box.append(h("h3", { text: "Seeds" }));
  box.append(snap?.seeds ? kvTable("snapshot-seeds", flatten(snap.seeds), "") : h("p", { class: "muted", text: "Not recorded." }));

  box.append(h("h3", { text: "Data" }));
  const refs = snap?.data_refs || [];
  if (refs.length) {
    box.append(h("table", { class: "table", id: "snapshot-data" },
      h("thead", null, h("tr", null, ["Name", "Role", "Digest", "Size", "Path"].map((t) => h("th", { text: t })))),
      h("tbody", null, refs.map((r) => h("tr", null,
        h("td", { text: r.name ?? "" }),
        h("td", { text: r.role ?? "" }),
        h("td", { class: "mono" }, r.digest ? link(`/lineage?ref=${encodeURIComponent(r.digest)}`, shortDigest(r.digest)) : ""),
        h("td", { class: "num", text: fmtSize(r.size) }),
        h("td", { class: "mono", text: r.path ?? "" }))))));
  } else box.append(h("p", { class: "muted", text: "No data references." }));
  return box;
}

function renderArtifacts(list, ctx) {
  const box = h("div", { id: "artifacts" });
  if (!list.length) {
    box.append(h("p", { class: "muted", text: "No artifacts or models." }));
    return box;
  }
  box.append(h("table", { class: "table" },
    h("thead", null, h("tr", null, ["Name", "Kind", "Digest", "Size", "Files", "Created", ""].map((t) => h("th", { text: t })))),
    h("tbody", null, list.map((a) => h("tr", { class: "artifact-row", "data-name": a.name },
      h("td", { class: "name", text: a.name }),
      h("td", null, h("span", { class: `kind kind-${a.kind}`, text: a.kind })),
      h("td", { class: "mono", title: a.digest || "" }, a.digest ? link(`/lineage?ref=${encodeURIComponent(a.digest)}`, shortDigest(a.digest)) : "", a.digest ? copyButton(() => a.digest) : null),
      h("td", { class: "num", text: fmtSize(a.size) }),
      h("td", { class: "num", text: a.files ?? "" }),
      h("td", { class: "nowrap", text: fmtTime(a.created_at) }),
      h("td", null, h("a", { class: "btn btn-small", href: a.download, download: "" }, "Download")))))));
  return box;
}

export async function runPage(root, ctx, id) {
  let run;
  try {
    run = await getJSON(runPath(id));
  } catch (err) {
    root.append(h("div", { class: "error big", id: "run-error", text: err.status === 404 ? `No run '${id}' in this home.` : `Could not load the run: ${err.message}` }));
    ctx.ready();
    return;
  }
  if (ctx.stale()) return;
  document.title = `${run.name || run.id} · polytrack`;
  const base = runPath(run.id);
  const statusSlot = h("span", { class: "status-slot" }, statusBadge(run));
  const durationEl = h("span", { text: fmtDuration(run.duration) });
  root.append(h("div", { class: "page-head run-head" },
    h("div", null,
      h("div", { class: "crumbs" }, link("/", "Runs"), " / ", h("span", { text: run.project })),
      h("h1", { id: "run-title" }, run.name || run.id, " ", statusSlot)),
    h("div", { class: "run-meta" },
      h("span", { class: "mono", title: "run id", text: run.id }),
      h("span", { text: `started ${fmtTime(run.created_at)}` }),
      durationEl,
      run.user ? h("span", { text: run.user }) : null,
      run.host ? h("span", { text: `@ ${run.host}` }) : null,
      (run.tags || []).map((t) => h("span", { class: "tag", text: t })))));
  if (run.message) root.append(h("div", { class: "notice", text: run.message }));
  if ((run.damaged || []).length) root.append(h("div", { class: "notice warn", text: `Damaged records skipped: ${run.damaged.join(", ")}` }));

  const nav = h("nav", { class: "section-nav" },
    [["overview", "Overview"], ["metrics", "Metrics"], ["system", "System"], ["media", "Media"], ["logs", "Logs"], ["artifacts", "Artifacts"], ["snapshot", "Snapshot"], ["lineage", "Lineage"], ["reproduce", "Reproduce"]]
      .map(([k, t]) => h("a", { href: `#section-${k}`, text: t })));
  root.append(nav);

  // Overview: params, outputs, summaries.
  const summaries = h("table", { class: "table", id: "metric-summaries" });
  const fillSummaries = () => {
    clear(summaries);
    const keys = Object.keys(run.metrics || {}).filter((k) => !k.startsWith("system/")).sort();
    summaries.append(h("thead", null, h("tr", null, ["Metric", "Last", "Min", "Max", "Step", "Count"].map((t) => h("th", { text: t })))),
      h("tbody", null, keys.map((k) => {
        const m = run.metrics[k];
        return h("tr", null, h("td", { text: k }), [m.last, m.min, m.max, m.step, m.count].map((v) => h("td", { class: "num", text: fmtNum(v) })));
      })));
  };
  fillSummaries();
  root.append(h("div", { class: "grid-2", id: "section-overview" },
    section("params", "Params", kvTable("params", run.params, "No params.")),
    section("outputs", "Outputs", kvTable("outputs", run.outputs, "No outputs."),
      run.notes ? h("div", null, h("h3", { text: "Notes" }), h("p", { class: "notes", text: run.notes })) : null,
      h("h3", { text: "Metric summaries" }), h("div", { class: "scroll-x" }, summaries))));

  // Charts.
  const chartState = { xMode: "step", smoothing: 0, logY: false };
  const charts = new Map();
  const seriesCache = new Map();
  const chartGrid = h("div", { class: "chart-grid", id: "charts" });
  const sysGrid = h("div", { class: "chart-grid", id: "system-charts" });
  const redrawAll = () => {
    for (const [key, chart] of charts) {
      const resp = seriesCache.get(key);
      if (resp) chart.draw([{ label: key, color: PALETTE[0], resp }], { ...chartState, t0: [run.created_at] });
    }
  };
  root.append(section("metrics", "Metrics", chartControls(chartState, redrawAll), chartGrid,
    run.metric_keys.length ? null : h("p", { class: "muted", text: "No metrics logged." })));
  root.append(section("system", "System", sysGrid,
    run.system_keys.length ? null : h("p", { class: "muted", text: "No system metrics recorded." })));

  const addChart = (key, grid) => {
    const el = h("div", { class: "chart", "data-key": key });
    grid.append(el);
    const chart = new MetricChart(el, key, `run-${run.id}`, grid === sysGrid ? 170 : 240);
    const k = encodeURIComponent(key);
    chart.setLinks([{ label: "CSV", href: `${base}/series.csv?key=${k}` }, { label: "JSON", href: `${base}/series.json?key=${k}` }]);
    charts.set(key, chart);
  };
  for (const k of run.metric_keys) addChart(k, chartGrid);
  for (const k of run.system_keys) addChart(k, sysGrid);

  async function loadSeries(key) {
    const chart = charts.get(key);
    try {
      const points = chart.pixelWidth();
      chart.el.dataset.requested = String(points);
      const resp = await getJSON(`${base}/series`, { key, points });
      if (ctx.stale()) return;
      seriesCache.set(key, resp);
      chart.draw([{ label: key, color: PALETTE[0], resp }], { ...chartState, t0: [run.created_at] });
    } catch (err) {
      chart.showError(`Could not load ${key}: ${err.message}`);
    }
  }

  // Media: images, histograms, tables, figures, ... (media.js).
  const mediaSlot = h("div", null, h("div", { id: "media", class: "muted", text: "Loading…" }));
  let mediaBox = null;
  root.append(section("media", "Media", mediaSlot));

  // Logs.
  const logBox = h("div", { id: "log", class: "log" });
  const logSearch = h("input", { id: "log-search", type: "search", class: "input input-small", placeholder: "Search the output" });
  const follow = h("input", { id: "log-follow", type: "checkbox" });
  follow.checked = true;
  const logInfo = h("span", { class: "muted", id: "log-info" });
  const logState = { cursor: 0, q: "", lines: 0, busy: false };
  const downloadLog = h("span");
  root.append(section("logs", "Output log",
    h("div", { class: "toolbar" }, logSearch, h("label", null, follow, " Follow"), logInfo, h("span", { class: "spacer" }), downloadLog),
    logBox));

  function appendLines(lines) {
    const stick = follow.checked;
    const frag = document.createDocumentFragment();
    for (const l of lines) {
      frag.append(h("div", { class: `log-line ${["stderr", "polytrack"].includes(l.stream) ? l.stream : "stdout"}`, title: l.time ? fmtTime(l.time) : "" }, l.text));
    }
    logBox.append(frag);
    logState.lines += lines.length;
    while (logState.lines > LOG_KEEP && logBox.firstChild) {
      logBox.removeChild(logBox.firstChild);
      logState.lines--;
    }
    if (stick) logBox.scrollTop = logBox.scrollHeight;
  }

  /** Reads the log from the cursor to its end (the tail of a long log stays in view). */
  async function pullLogs() {
    if (logState.busy) return;
    logState.busy = true;
    try {
      for (let i = 0; i < 50; i++) {
        const q = logState.q;
        const resp = await getJSON(`${base}/logs`, { after: logState.cursor, limit: 1000, q });
        if (ctx.stale() || q !== logState.q) return;
        if (!q && logState.cursor === 0 && resp.total > LOG_KEEP) {
          // Tail: a long log opens at its last lines rather than its first.
          logState.cursor = resp.total - LOG_KEEP;
          continue;
        }
        appendLines(resp.lines);
        logState.cursor = resp.cursor;
        logInfo.textContent = `${logState.lines.toLocaleString()} lines${logState.q ? " matching" : ""}`;
        if (resp.lines.length < 1000) break;
      }
    } catch (err) {
      logInfo.textContent = `Could not load the log: ${err.message}`;
    } finally {
      logState.busy = false;
    }
  }
  logSearch.addEventListener("input", debounce(async () => {
    logState.q = logSearch.value;
    logState.cursor = 0;
    logState.lines = 0;
    clear(logBox);
    while (logState.busy) await new Promise((r) => setTimeout(r, 20));
    await pullLogs();
  }, 250));

  // Artifacts, snapshot, lineage, reproduce.
  const artifactsSlot = h("div", null, h("div", { id: "artifacts", class: "muted", text: "Loading…" }));
  const snapshotSlot = h("div", null, h("div", { id: "snapshot", class: "muted", text: "Loading…" }));
  const graphBox = h("div", { id: "lineage-graph", class: "lineage-graph" });
  const reproduce = h("pre", { id: "reproduce-command", class: "cmd", text: run.reproduce || `polytrack reproduce ${run.id}` });
  root.append(section("artifacts", "Artifacts and models", artifactsSlot));
  root.append(section("snapshot", "Reproducibility snapshot", snapshotSlot));
  root.append(section("lineage", "Lineage", graphBox));
  root.append(section("reproduce", "Reproduce", h("div", { class: "cmd-row" }, reproduce, copyButton(() => reproduce.textContent)),
    h("p", { class: "muted", text: "Runs the same code, arguments and environment checks again from the recorded snapshot." })));

  const jobs = [
    ...[...charts.keys()].map(loadSeries),
    pullLogs(),
    mediaSection(run.id, ctx.onLeave).then((m) => { if (!ctx.stale()) { mediaBox = m; clear(mediaSlot).append(m); } })
      .catch((e) => { clear(mediaSlot).append(h("div", { id: "media", class: "error", text: e.message })); }),
    getJSON(`${base}/artifacts`).then((a) => { clear(artifactsSlot).append(renderArtifacts(a.artifacts || [], ctx)); })
      .catch((e) => { clear(artifactsSlot).append(h("div", { id: "artifacts", class: "error", text: e.message })); }),
    getJSON(`${base}/snapshot`).then((s) => { clear(snapshotSlot).append(renderSnapshot(s)); })
      .catch((e) => { clear(snapshotSlot).append(h("div", { id: "snapshot", class: "error", text: e.message }, h("div", { id: "diff" }))); }),
    getJSON(`${base}/lineage`, { depth: 2 }).then((g) => {
      const focus = (g.nodes || []).find((n) => n.run_id === run.id)?.id ?? null;
      drawGraph(graphBox, g, ctx.navigate, focus);
    }).catch((e) => { graphBox.append(h("div", { class: "error", text: e.message })); }),
  ];
  await Promise.all(jobs);
  if (ctx.stale()) return;
  ctx.ready();

  // Live: poll the run every second; refetch series whose summary moved, append new log lines.
  let timer = null;
  let lastUpdated = run.updated_at;
  const sig = (m) => (m ? `${m.step}|${m.count}|${m.last}` : "");
  async function poll() {
    if (ctx.stale()) return;
    try {
      const fresh = await getJSON(runPath(run.id));
      if (ctx.stale()) return;
      const moved = [];
      for (const k of [...fresh.metric_keys, ...fresh.system_keys]) {
        if (!charts.has(k)) {
          addChart(k, k.startsWith("system/") ? sysGrid : chartGrid);
          moved.push(k);
        } else if (sig(fresh.metrics?.[k]) !== sig(run.metrics?.[k]) || fresh.updated_at !== lastUpdated) {
          moved.push(k);
        }
      }
      lastUpdated = fresh.updated_at;
      run = fresh;
      clear(statusSlot).append(statusBadge(run));
      durationEl.textContent = fmtDuration(run.duration);
      fillSummaries();
      await Promise.all([...moved.map(loadSeries), pullLogs(), mediaBox?.refresh()]);
    } catch {
      /* the next tick tries again */
    }
    if (!ctx.stale() && run.live) timer = setTimeout(poll, 1000);
    else if (!ctx.stale()) root.classList.remove("is-live");
  }
  if (run.live) {
    root.classList.add("is-live");
    timer = setTimeout(poll, 1000);
  }
  ctx.onLeave(() => {
    clearTimeout(timer);
    for (const c of charts.values()) c.destroy();
  });
}
