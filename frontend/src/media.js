// Media: a run's images, histograms, tables, text, HTML, figures, curves, confusion
// matrices, audio and video (the server's /api/runs/<id>/media endpoints). A key is one
// `div.media-card[data-name][data-kind]`; a step slider (`input.media-slider`) picks the
// step shown, its label is `.media-step`. Interactive figures are drawn by their own
// libraries, loaded only when a figure needs one (separate chunks: the main bundle stays
// small). HTML runs in <iframe sandbox="allow-scripts">, served with a sandbox CSP.
import uPlot from "uplot";
import { getJSON, runPath } from "./api.js";
import { h, clear } from "./dom.js";
import { fmtNum } from "./format.js";

const TABLE_PAGE = 20;

const mediaBase = (runId, name) => `${runPath(runId)}/media/${encodeURIComponent(name)}`;

/** The key's steps (with inline values), one request. */
export function fetchMedia(runId, name, params) {
  return getJSON(mediaBase(runId, name), params);
}

export function fetchMediaKeys(runId) {
  return getJSON(`${runPath(runId)}/media`);
}

/** A step's value: inline when the server sent it, else its file (JSON or text). */
async function valueOf(item, kind) {
  if (item.value !== undefined && item.value !== null) return item.value;
  const wanted = kind === "text" ? "text/plain" : "application/json";
  const file = item.files.find((f) => f.media_type === wanted);
  if (!file) return null;
  const resp = await fetch(file.url, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  return kind === "text" ? resp.text() : resp.json();
}

// -- colors -------------------------------------------------------------------------------

/** White to the accent blue, t in [0, 1]. */
function heat(t) {
  const c = Math.max(0, Math.min(1, t));
  const r = Math.round(255 + (37 - 255) * c);
  const g = Math.round(255 + (99 - 255) * c);
  const b = Math.round(255 + (235 - 255) * c);
  return `rgb(${r},${g},${b})`;
}

// -- one step of each kind ----------------------------------------------------------------

function imageWithBoxes(file, item, i) {
  const img = h("img", { class: "media-image", src: file.url, alt: `${item.caption || "image"} ${i + 1}`, "data-step": item.step, loading: "lazy" });
  const boxes = item.meta?.boxes;
  if (!boxes?.length || !item.shape?.length) return img;
  const [, hgt, wid] = item.shape.length === 4 ? item.shape : [1, ...item.shape];
  const overlay = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  overlay.setAttribute("class", "media-boxes");
  overlay.setAttribute("viewBox", `0 0 ${wid} ${hgt}`);
  overlay.setAttribute("preserveAspectRatio", "none");
  for (const b of boxes) {
    const [x0, y0, x1, y1] = b.box;
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [k, v] of Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 })) r.setAttribute(k, String(v));
    overlay.append(r);
    if (b.label) {
      const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
      t.setAttribute("x", String(x0));
      t.setAttribute("y", String(Math.max(y0 - 2, 8)));
      t.textContent = b.label;
      overlay.append(t);
    }
  }
  return h("div", { class: "media-image-wrap" }, img, overlay);
}

function renderImages(box, item) {
  const pngs = item.files.filter((f) => f.media_type.startsWith("image/"));
  box.append(h("div", { class: "media-gallery" }, pngs.map((f, i) => imageWithBoxes(f, item, i))));
}

function renderTable(box, value) {
  const columns = value?.columns || [];
  const rows = value?.data || [];
  const pages = Math.max(1, Math.ceil(rows.length / TABLE_PAGE));
  let page = 0;
  const tbody = h("tbody");
  const info = h("span", { class: "muted media-table-info" });
  const prev = h("button", { class: "btn btn-small", type: "button", text: "‹ Prev" });
  const next = h("button", { class: "btn btn-small", type: "button", text: "Next ›" });
  const fill = () => {
    clear(tbody);
    for (const row of rows.slice(page * TABLE_PAGE, (page + 1) * TABLE_PAGE)) {
      tbody.append(h("tr", null, row.map((c) => h("td", { class: typeof c === "number" ? "num" : "", text: c === null ? "" : typeof c === "object" ? JSON.stringify(c) : String(c) }))));
    }
    const first = rows.length ? page * TABLE_PAGE + 1 : 0;
    info.textContent = `rows ${first}–${Math.min(rows.length, (page + 1) * TABLE_PAGE)} of ${rows.length}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  prev.addEventListener("click", () => { page = Math.max(0, page - 1); fill(); });
  next.addEventListener("click", () => { page = Math.min(pages - 1, page + 1); fill(); });
  fill();
  box.append(h("div", { class: "scroll-x" }, h("table", { class: "table compact media-table" },
    h("thead", null, h("tr", null, columns.map((c) => h("th", { text: String(c) })))), tbody)),
  h("div", { class: "toolbar" }, prev, next, info));
}

function renderConfusion(box, value) {
  const xs = value?.x || [];
  const ys = value?.y || [];
  const z = value?.z || [];
  let max = 0;
  for (const row of z) for (const v of row) if (v > max) max = v;
  const table = h("table", { class: "confusion" },
    h("thead", null, h("tr", null, h("th", { class: "confusion-corner", text: "true \\ predicted" }), xs.map((x) => h("th", { text: String(x) })))),
    h("tbody", null, ys.map((y, i) => h("tr", null, h("th", { text: String(y) }), xs.map((_, j) => {
      const v = z[i]?.[j] ?? 0;
      const td = h("td", { class: "confusion-cell num", text: String(v), "data-count": v });
      td.style.backgroundColor = heat(max ? v / max : 0);
      if (max && v / max > 0.55) td.classList.add("dark");
      return td;
    })))));
  box.append(h("div", { class: "scroll-x" }, table));
}

function renderCurve(box, value, item, onLeave) {
  const el = h("div", { class: "media-curve" });
  const meta = item.meta || {};
  const facts = [meta.kind && meta.kind !== "custom" ? meta.kind.toUpperCase() : null,
    meta.auc !== undefined ? `AUC ${fmtNum(meta.auc)}` : null,
    meta.average_precision !== undefined ? `AP ${fmtNum(meta.average_precision)}` : null,
    meta.annotation || null].filter(Boolean);
  box.append(h("div", { class: "muted", text: facts.join(" · ") }), el);
  const x = value?.x || [];
  const y = value?.y || [];
  // uPlot wants x ascending: a ROC's false-positive rates are, a PR's recall is not.
  const order = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
  const labels = meta.kind === "roc" ? ["false positive rate", "true positive rate"] : meta.kind === "pr" ? ["recall", "precision"] : ["x", "y"];
  const width = 380; // the box is not laid out yet: what the narrowest card holds
  const plot = new uPlot({
    width, height: 240,
    scales: { x: { time: false } },
    axes: [{ label: labels[0] }, { label: labels[1] }],
    series: [{ label: labels[0] }, { label: labels[1], stroke: "#2563eb", width: 2 }],
    legend: { show: false },
  }, [order.map((i) => x[i]), order.map((i) => y[i])], el);
  onLeave(() => plot.destroy());
}

async function renderFigure(box, item, value, onLeave) {
  const library = value?.library || item.meta?.library;
  const png = item.files.find((f) => f.media_type === "image/png");
  const html = item.files.find((f) => f.media_type === "text/html");
  const el = h("div", { class: "media-figure", "data-library": library || "" });
  box.append(el);
  if (library === "plotly" && value?.spec) {
    const Plotly = await loadPlotly();
    const spec = value.spec;
    await Plotly.newPlot(el, spec.data || [], { autosize: true, ...(spec.layout || {}) }, { displaylogo: false, responsive: true });
    onLeave(() => Plotly.purge(el));
  } else if (library === "vega-lite" && value?.spec) {
    const [{ default: vegaEmbed }, { expressionInterpreter }] = await Promise.all([import("vega-embed"), import("vega-interpreter")]);
    // The interpreter instead of vega's code generation: the CSP forbids eval.
    // No injected <style> (the CSP refuses it): app.css carries the tooltip's rules.
    const result = await vegaEmbed(el, value.spec, {
      ast: true, expr: expressionInterpreter, actions: false, renderer: "svg",
      defaultStyle: false, tooltip: { disableDefaultStyle: true },
    });
    onLeave(() => result.finalize());
  } else if (library === "bokeh" && html) {
    el.append(h("iframe", { class: "media-html", sandbox: "allow-scripts", src: html.url, title: item.caption || "figure" }));
  } else if (png) {
    el.append(h("img", { class: "media-image", src: png.url, alt: item.caption || "figure" }));
  } else {
    el.append(h("pre", { class: "media-text", text: JSON.stringify(value, null, 1).slice(0, 20000) }));
  }
}

// plotly.js-dist-min injects maplibre's CSS (for map traces) in a <style> with this id
// when it loads, unless one is there: an empty one (the CSP allows only that) stands in.
// The id is the CSS's hash: pinned with the version in package-lock.json.
const PLOTLY_MAPLIBRE_STYLE = "ce8d464691048653ffe3a57c6c18ab566e8366f186677868cf724621a857b4fe";
let plotly = null;

function loadPlotly() {
  if (!plotly) {
    if (!document.getElementById(PLOTLY_MAPLIBRE_STYLE)) {
      document.head.append(h("style", { id: PLOTLY_MAPLIBRE_STYLE }));
    }
    plotly = import("plotly.js-dist-min").then((m) => m.default);
  }
  return plotly;
}

/** Draws one step of a key into `box` (used by the run page's cards and by compare). */
export async function renderItem(box, kind, item, onLeave) {
  clear(box);
  if (item.caption) box.append(h("div", { class: "media-caption", text: item.caption }));
  const file = item.files[0];
  if (kind === "image") renderImages(box, item);
  else if (kind === "html") box.append(h("iframe", { class: "media-html", sandbox: "allow-scripts", src: file.url, title: item.caption || "html" }));
  else if (kind === "audio") box.append(h("audio", { class: "media-audio", controls: true, src: file.url, preload: "metadata" }));
  else if (kind === "video") {
    if (file.media_type === "image/gif") box.append(h("img", { class: "media-image media-video", src: file.url, alt: item.caption || "video" }));
    else box.append(h("video", { class: "media-video", controls: true, src: file.url, preload: "metadata" }));
  } else {
    const value = await valueOf(item, kind);
    if (kind === "text") box.append(h("pre", { class: "media-text", text: value ?? "" }));
    else if (kind === "table") renderTable(box, value);
    else if (kind === "confusion") renderConfusion(box, value);
    else if (kind === "curve") renderCurve(box, value, item, onLeave);
    else if (kind === "figure") await renderFigure(box, item, value, onLeave);
    else if (kind === "histogram") renderHistogram(box, [{ step: item.step, value }]);
    else box.append(h("p", { class: "muted", text: `A ${kind}: not shown here.` }));
  }
}

// -- histograms over steps ----------------------------------------------------------------

const HIST_ROWS = 64;

/** Steps x bins on a canvas: each column a step, each row a value range; darker where
 * more of that step's values fell (each step scaled to its own largest bin). `total`,
 * where given, is how many steps the key has: the columns are a sample of them. */
function renderHistogram(box, steps, total = null) {
  const hists = steps.filter((s) => s.value?.edges?.length);
  if (!hists.length) {
    box.append(h("p", { class: "muted", text: "No histogram values." }));
    return;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of hists) {
    const e = s.value.edges;
    if (e[0] !== null && e[0] < lo) lo = e[0];
    if (e[e.length - 1] !== null && e[e.length - 1] > hi) hi = e[e.length - 1];
  }
  if (!(hi > lo)) hi = lo + 1;
  const cols = hists.length;
  const canvas = h("canvas", { class: "media-heatmap", width: Math.max(cols, 1), height: HIST_ROWS, "data-steps": cols, "data-rows": HIST_ROWS });
  const ctx2d = canvas.getContext("2d");
  const img = ctx2d.createImageData(cols, HIST_ROWS);
  hists.forEach((s, col) => {
    const rows = new Float64Array(HIST_ROWS);
    const { edges, counts } = s.value;
    for (let i = 0; i < counts.length; i++) {
      const mid = ((edges[i] ?? lo) + (edges[i + 1] ?? hi)) / 2;
      const r = Math.min(HIST_ROWS - 1, Math.max(0, Math.floor(((mid - lo) / (hi - lo)) * HIST_ROWS)));
      rows[r] += counts[i] || 0;
    }
    const max = Math.max(...rows);
    for (let r = 0; r < HIST_ROWS; r++) {
      const t = max ? rows[r] / max : 0;
      const p = ((HIST_ROWS - 1 - r) * cols + col) * 4; // high values at the top
      img.data[p] = Math.round(255 + (37 - 255) * t);
      img.data[p + 1] = Math.round(255 + (99 - 255) * t);
      img.data[p + 2] = Math.round(255 + (235 - 255) * t);
      img.data[p + 3] = 255;
    }
  });
  ctx2d.putImageData(img, 0, 0);
  const first = hists[0].step;
  const last = hists[hists.length - 1].step;
  const sampled = total !== null && total > cols;
  const note = sampled ? `${cols} of ${total} steps, spread evenly` : `${cols} step${cols === 1 ? "" : "s"}`;
  canvas.title = `steps ${first}–${last}: ${note}`;
  if (sampled) canvas.dataset.sampled = "1";
  box.append(h("div", { class: "media-heatmap-wrap" },
    h("div", { class: "media-heatmap-y" }, h("span", { text: fmtNum(hi) }), h("span", { text: fmtNum(lo) })),
    canvas),
  h("div", { class: "media-heatmap-x muted" }, h("span", { text: `step ${first}` }),
    sampled ? h("span", { class: "media-heatmap-sampled", text: note }) : null,
    h("span", { text: cols > 1 ? `step ${last}` : "" })));
}

// -- a key's card -------------------------------------------------------------------------

const STEP_CACHE = 64; // single steps fetched on demand, kept per key (scrubbing back and forth)

/** The key's step numbers, all of them (the answer's `all_steps`; its `steps` where an
 * older server sent none). */
function stepsOf(data) {
  return data?.all_steps || (data?.steps || []).map((s) => s.step);
}

/** The index of the last of the sorted `steps` at or before `step`, -1 if none is. */
function atOrBefore(steps, step) {
  let lo = 0;
  let hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** A key's steps by number: those its answer carried, and any other fetched when picked
 * (`?step=N`), the last `STEP_CACHE` of those kept. `get(step)` resolves to the item. */
function stepSource(runId, name, data) {
  const loaded = new Map((data?.steps || []).map((s) => [s.step, s]));
  const fetched = new Map(); // step -> Promise of its item, oldest first
  return {
    get(step) {
      if (loaded.has(step)) return Promise.resolve(loaded.get(step));
      let got = fetched.get(step);
      if (got) {
        fetched.delete(step); // most recently used last
      } else {
        got = fetchMedia(runId, name, { step }).then((d) => {
          const item = d.steps?.[0];
          if (!item) throw new Error(`no step ${step}`);
          return item;
        });
        got.catch(() => { if (fetched.get(step) === got) fetched.delete(step); });
      }
      fetched.set(step, got);
      while (fetched.size > STEP_CACHE) fetched.delete(fetched.keys().next().value);
      return got;
    },
  };
}

/** A card for one media key: loads its steps, shows one at a time with a slider over
 * every step the key has (one the answer left out is fetched when picked), or all of the
 * answer's steps at once for a histogram (the heatmap, of the sampled steps where the key
 * has more than the answer). The last step unless `keep` names the step to stay at.
 * `card.media` holds destroy(), and where the slider is (for a redraw). */
export async function mediaCard(runId, key, keep = null) {
  const body = h("div", { class: "media-body" });
  const card = h("div", { class: "media-card", "data-name": key.name, "data-kind": key.kind },
    h("div", { class: "media-head" }, h("span", { class: "media-name", text: key.name }),
      h("span", { class: `kind kind-${key.kind}`, text: key.kind }),
      h("span", { class: "muted", text: `${key.steps} step${key.steps === 1 ? "" : "s"}` })),
    body);
  let leaveHooks = [];
  let index = 0;
  let all = [];
  card.media = {
    destroy: () => { leaveHooks.forEach((f) => f()); leaveHooks = []; },
    atLast: () => index >= all.length - 1,
    step: () => all[index],
  };
  let data;
  try {
    data = await fetchMedia(runId, key.name);
  } catch (err) {
    body.append(h("div", { class: "error", text: `Could not load ${key.name}: ${err.message}` }));
    return card;
  }
  if (key.kind === "histogram") {
    all = data.steps.map((s) => s.step);
    renderHistogram(body, data.steps, data.sampled ? data.total : null);
    index = all.length - 1;
    card.dataset.drawn = "1";
    return card;
  }
  all = stepsOf(data);
  const source = stepSource(runId, key.name, data);
  const slot = h("div", { class: "media-slot" });
  const label = h("span", { class: "media-step" });
  const slider = h("input", { class: "media-slider", type: "range", min: 0, max: Math.max(0, all.length - 1), step: 1, value: all.length - 1 });
  let shown = 0;
  const show = async (i) => {
    const mine = ++shown;
    index = i;
    const step = all[i];
    label.textContent = `step ${step}`;
    card.dataset.step = String(step);
    card.dataset.drawn = "0";
    try {
      const item = await source.get(step);
      if (mine !== shown) return;
      card.media.destroy();
      const box = h("div", { class: "media-item", "data-step": item.step });
      await renderItem(box, key.kind, item, (f) => leaveHooks.push(f));
      if (mine !== shown) return;
      clear(slot).append(box);
    } catch (err) {
      if (mine === shown) clear(slot).append(h("div", { class: "error", text: `Could not show step ${step}: ${err.message}` }));
    }
    if (mine === shown) card.dataset.drawn = "1";
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  if (all.length > 1) {
    body.append(h("div", { class: "toolbar media-controls" }, slider, label,
      data.all_steps_complete === false ? h("span", { class: "muted", text: `${all.length} of ${data.total} steps on the slider` }) : null));
  } else body.append(h("div", { class: "toolbar media-controls" }, label));
  body.append(slot);
  const kept = keep === null ? -1 : all.indexOf(keep);
  const start = kept >= 0 ? kept : all.length - 1;
  slider.value = String(start);
  await show(start);
  return card;
}

/** The run page's Media section body; `box.refresh()` (the page calls it while the run
 * is live) adds new keys and redraws those with new steps, a card whose slider is at its
 * last step following the new last one, any other staying where it is. */
export async function mediaSection(runId, onLeave) {
  const box = h("div", { id: "media" });
  const grid = h("div", { class: "media-grid" });
  const empty = h("p", { class: "muted", text: "No media logged." });
  const cards = new Map(); // name -> [key, card]
  let busy = false;
  const sync = async () => {
    const { media } = await fetchMediaKeys(runId);
    const drawn = await Promise.all(media.map(async (key) => {
      const had = cards.get(key.name);
      if (had && had[0].steps === key.steps) return had[1];
      const old = had?.[1];
      const card = await mediaCard(runId, key, old && !old.media.atLast() ? old.media.step() : null);
      if (old) old.media.destroy();
      cards.set(key.name, [key, card]);
      return card;
    }));
    // In name order, each card where it was (a redrawn one replaces its old self).
    drawn.forEach((card, i) => { if (grid.children[i] !== card) grid.insertBefore(card, grid.children[i] || null); });
    for (const card of [...grid.children].slice(drawn.length)) card.remove();
    if (media.length && empty.isConnected) empty.replaceWith(grid);
  };
  await sync();
  box.append(cards.size ? grid : empty);
  box.refresh = async () => {
    if (busy) return;
    busy = true;
    try {
      await sync();
    } finally {
      busy = false;
    }
  };
  onLeave(() => { for (const [, card] of cards.values()) card.media.destroy(); });
  return box;
}

// -- compare: two runs side by side at a step ---------------------------------------------

/** Compare's Media section: a key, a step (any step either run logged), and each run's
 * value at that step (the last logged at or before it, fetched when its answer left it
 * out; a histogram draws its sampled steps up to there). */
export async function compareMedia(runs, onLeave) {
  const box = h("div", { id: "compare-media" });
  const lists = await Promise.all(runs.map((r) => fetchMediaKeys(r.id).then((m) => m.media).catch(() => [])));
  const kinds = new Map();
  lists.forEach((l) => l.forEach((k) => kinds.set(k.name, k.kind)));
  const names = [...kinds.keys()].sort();
  if (!names.length) {
    box.append(h("p", { class: "muted", text: "No media logged." }));
    return box;
  }
  const select = h("select", { class: "input input-small", id: "compare-media-key" }, names.map((n) => h("option", { value: n, text: n })));
  const slider = h("input", { class: "media-slider", id: "compare-media-slider", type: "range", min: 0, max: 0, step: 1, value: 0 });
  const label = h("span", { class: "media-step", id: "compare-media-step" });
  const cols = runs.map((r) => h("div", { class: "compare-media-col", "data-run-id": r.id }));
  box.append(h("div", { class: "toolbar" }, select, slider, label), h("div", { class: "compare-media-grid" }, cols));
  let per = []; // each run's answer for the key (null: the run lacks it)
  let sources = []; // each run's stepSource
  let allSteps = [];
  let hooks = [];
  let generation = 0;
  const draw = async () => {
    const mine = ++generation;
    const step = allSteps[Number(slider.value)];
    label.textContent = step === undefined ? "" : `step ${step}`;
    box.dataset.step = step === undefined ? "" : String(step);
    box.dataset.drawn = "0";
    const kind = kinds.get(select.value);
    const drawn = await Promise.all(cols.map(async (col, i) => {
      const inner = h("div", { class: "media-item" });
      const itsHooks = [];
      let at = null;
      try {
        if (kind === "histogram") {
          const upTo = (per[i]?.steps || []).filter((s) => s.step <= step);
          at = upTo.length ? upTo[upTo.length - 1].step : null;
          // The key's steps up to here, of which the heatmap draws the sampled ones.
          if (upTo.length) renderHistogram(inner, upTo, atOrBefore(stepsOf(per[i]), step) + 1);
        } else {
          const own = stepsOf(per[i]);
          const j = step === undefined ? -1 : atOrBefore(own, step);
          at = j >= 0 ? own[j] : null;
          if (at !== null) {
            const item = await sources[i].get(at);
            if (mine !== generation) return null;
            await renderItem(inner, kind, item, (f) => itsHooks.push(f));
          }
        }
      } catch (err) {
        inner.append(h("div", { class: "error", text: err.message }));
      }
      const title = h("div", { class: "compare-media-title" }, runs[i].name || runs[i].id,
        h("span", { class: "muted", text: at !== null ? ` · step ${at}` : " · nothing at or before this step" }));
      return [col, title, inner, itsHooks];
    }));
    if (mine !== generation) {
      drawn.forEach((d) => d?.[3].forEach((f) => f()));
      return;
    }
    hooks.forEach((f) => f());
    hooks = drawn.flatMap((d) => d[3]);
    for (const [col, title, inner] of drawn) clear(col).append(title, inner);
    box.dataset.drawn = "1";
  };
  const load = async () => {
    const name = select.value;
    per = await Promise.all(runs.map((r, i) => (lists[i].some((k) => k.name === name) ? fetchMedia(r.id, name).catch(() => null) : Promise.resolve(null))));
    sources = runs.map((r, i) => stepSource(r.id, name, per[i]));
    const steps = kinds.get(name) === "histogram" ? (p) => (p?.steps || []).map((s) => s.step) : stepsOf;
    allSteps = [...new Set(per.flatMap((p) => steps(p)))].sort((a, b) => a - b);
    slider.max = String(Math.max(0, allSteps.length - 1));
    slider.value = String(Math.max(0, allSteps.length - 1));
    await draw();
  };
  select.addEventListener("change", load);
  slider.addEventListener("input", draw);
  onLeave(() => hooks.forEach((f) => f()));
  await load();
  return box;
}
