// The runs page: a server-paged table (sorting, `where`, search and grouping happen on the
// server, so 10,000 runs cost one page of rows), a column picker and run selection.
import { getJSON, ApiError } from "./api.js";
import { h, clear, link, debounce } from "./dom.js";
import { fmtNum, fmtValue, fmtTime, fmtDuration, fieldFor, isNonFinite } from "./format.js";

const PAGE = 100;
const COLS_KEY = "polytrack.columns";

function loadColumns() {
  try {
    const v = JSON.parse(localStorage.getItem(COLS_KEY) || "null");
    if (v && Array.isArray(v.params) && Array.isArray(v.metrics)) return v;
  } catch {
    /* a damaged preference is just forgotten */
  }
  return null;
}

function saveColumns(cols) {
  try {
    localStorage.setItem(COLS_KEY, JSON.stringify(cols));
  } catch {
    /* private mode: the choice lasts for the page only */
  }
}

export function statusBadge(run) {
  return h("span", { class: `status status-${run.status}${run.live ? " is-live" : ""}`, title: run.live ? "live: heartbeat seen recently" : run.status },
    run.live ? h("span", { class: "live-dot" }) : null, run.status);
}

/** A compact runs table (lineage producers/consumers). */
export function smallRunsTable(runs) {
  if (!runs.length) return h("p", { class: "muted", text: "None." });
  return h("table", { class: "table" },
    h("thead", null, h("tr", null, ["Status", "Project", "Name", "Started", "Duration"].map((t) => h("th", { text: t })))),
    h("tbody", null, runs.map((r) => h("tr", { class: `run-row${r.live ? " live" : ""}`, "data-run-id": r.id },
      h("td", null, statusBadge(r)),
      h("td", { text: r.project }),
      h("td", null, link(`/runs/${encodeURIComponent(r.id)}`, r.name || r.id)),
      h("td", { text: fmtTime(r.created_at) }),
      h("td", { class: "num", text: fmtDuration(r.duration) })))));
}

export function whereErrorBox(err) {
  const box = h("div", { id: "where-error", class: "where-error", role: "alert" });
  const expr = err.expression ?? "";
  const lines = [expr];
  if (err.position !== null && err.position !== undefined) lines.push(" ".repeat(err.position) + "^");
  box.append(h("pre", { text: lines.join("\n") }), h("div", { class: "where-message", text: err.message }));
  return box;
}

export async function runsPage(root, ctx) {
  const params = new URLSearchParams(location.search);
  const state = {
    where: params.get("where") || "",
    q: params.get("q") || "",
    group: params.get("group") === "project" ? "project" : "none",
    order: params.get("order_by") || "-created",
    offset: Math.max(0, Number(params.get("offset")) || 0),
    selected: new Set(),
    columns: loadColumns(),
    data: null,
  };

  const whereInput = h("input", {
    id: "where", type: "text", class: "input where-input", spellcheck: "false", autocomplete: "off",
    placeholder: 'where: metrics.loss < 0.1 and params.optimizer == "adam"',
    title: "Press Enter to apply",
  });
  whereInput.value = state.where;
  whereInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      state.where = whereInput.value.trim();
      state.offset = 0;
      refresh();
    }
  });
  const searchInput = h("input", { id: "search", type: "search", class: "input search-input", placeholder: "Search name or tag", autocomplete: "off" });
  searchInput.value = state.q;
  const onSearch = debounce(() => {
    state.q = searchInput.value.trim();
    state.offset = 0;
    refresh();
  }, 250);
  searchInput.addEventListener("input", onSearch);
  searchInput.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onSearch(); });

  const groupSelect = h("select", { id: "group", class: "input" },
    h("option", { value: "none", text: "No grouping" }), h("option", { value: "project", text: "Group by project" }));
  groupSelect.value = state.group;
  groupSelect.addEventListener("change", () => {
    state.group = groupSelect.value;
    state.offset = 0;
    refresh();
  });

  const compareButton = h("button", { id: "compare-button", class: "btn btn-primary", disabled: true, type: "button" }, "Compare");
  compareButton.addEventListener("click", () => {
    if (state.selected.size >= 1) ctx.navigate(`/compare?ids=${[...state.selected].map(encodeURIComponent).join(",")}`);
  });
  const selCount = h("span", { class: "muted sel-count" });

  const picker = h("details", { class: "column-picker" }, h("summary", { class: "btn" }, "Columns"));
  const pickerBody = h("div", { class: "picker-body" });
  picker.append(pickerBody);

  const errorSlot = h("div", { class: "where-error-slot" });
  const totalEl = h("span", { id: "runs-total", text: "0" });
  const table = h("table", { id: "runs-table", class: "table runs-table" });
  const pager = h("div", { class: "pager" });

  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Runs"), h("span", { class: "muted" }, totalEl, " runs")),
    h("div", { class: "toolbar" }, whereInput, searchInput, groupSelect, picker, h("span", { class: "spacer" }), selCount, compareButton),
    errorSlot,
    h("div", { class: "table-wrap" }, table),
    pager,
  );

  function syncUrl() {
    const qs = new URLSearchParams();
    if (state.where) qs.set("where", state.where);
    if (state.q) qs.set("q", state.q);
    if (state.group !== "none") qs.set("group", state.group);
    if (state.order !== "-created") qs.set("order_by", state.order);
    if (state.offset) qs.set("offset", String(state.offset));
    const s = qs.toString();
    history.replaceState(null, "", s ? `/?${s}` : "/");
  }

  function updateSelection() {
    compareButton.disabled = state.selected.size < 1;
    selCount.textContent = state.selected.size ? `${state.selected.size} selected` : "";
  }

  function chosenColumns(data) {
    if (!state.columns) {
      state.columns = { params: data.param_keys.slice(0, 4), metrics: data.metric_keys.filter((k) => !k.startsWith("system/")).slice(0, 3) };
    }
    return state.columns;
  }

  function renderPicker(data) {
    clear(pickerBody);
    const cols = chosenColumns(data);
    const group = (title, keys, which) => {
      if (!keys.length) return null;
      return h("div", { class: "picker-group" }, h("div", { class: "picker-title", text: title }),
        keys.map((k) => {
          const cb = h("input", { type: "checkbox", "data-column": `${which}.${k}` });
          cb.checked = cols[which].includes(k);
          cb.addEventListener("change", () => {
            const list = cols[which].filter((x) => x !== k);
            if (cb.checked) list.push(k);
            cols[which] = list;
            saveColumns(cols);
            renderTable(state.data);
          });
          return h("label", { class: "picker-item" }, cb, " ", k);
        }));
    };
    const g1 = group("Params", data.param_keys, "params");
    const g2 = group("Metrics", data.metric_keys, "metrics");
    if (!g1 && !g2) pickerBody.append(h("p", { class: "muted", text: "No params or metrics yet." }));
    append2(pickerBody, g1, g2);
  }

  function append2(el, ...xs) {
    for (const x of xs) if (x) el.append(x);
  }

  function sortHeader(label, field, extraClass = "") {
    const desc = state.order === `-${field}`;
    const asc = state.order === field;
    const th = h("th", { "data-sort": field, class: `sortable ${extraClass}${asc || desc ? " sorted" : ""}`, title: `Sort by ${field}` },
      label, h("span", { class: "sort-arrow", text: asc ? " ▲" : desc ? " ▼" : "" }));
    th.addEventListener("click", () => {
      // Numbers and times read best largest/newest first; names A to Z.
      const numeric = /^(metrics|params)\.|^(created|duration|updated|finished)$/.test(field);
      state.order = asc ? `-${field}` : desc ? field : numeric ? `-${field}` : field;
      state.offset = 0;
      refresh();
    });
    return th;
  }

  function renderTable(data) {
    clear(table);
    const cols = chosenColumns(data);
    const params = cols.params.filter((k) => data.param_keys.includes(k));
    const metrics = cols.metrics.filter((k) => data.metric_keys.includes(k));
    const allBox = h("input", { type: "checkbox", class: "select-all", title: "Select all on this page" });
    allBox.checked = data.runs.length > 0 && data.runs.every((r) => state.selected.has(r.id));
    allBox.addEventListener("change", () => {
      for (const r of data.runs) {
        if (allBox.checked) state.selected.add(r.id);
        else state.selected.delete(r.id);
      }
      for (const cb of table.querySelectorAll("input.select-run")) cb.checked = state.selected.has(cb.dataset.runId);
      updateSelection();
    });
    const head = h("tr", null,
      h("th", { class: "check" }, allBox),
      sortHeader("Status", "status"),
      sortHeader("Project", "project"),
      sortHeader("Name", "name"),
      sortHeader("Started", "created"),
      sortHeader("Duration", "duration", "num"),
      sortHeader("User", "user"),
      sortHeader("Host", "host"),
      params.map((k) => sortHeader(k, fieldFor("params", k), "col-param")),
      metrics.map((k) => sortHeader(k, fieldFor("metrics", k), "col-metric num")),
    );
    const ncols = 8 + params.length + metrics.length;
    // A header row above the column names: a param and a metric may share a name.
    const groups = h("tr", { class: "col-groups" }, h("th", { colspan: "8" }),
      params.length ? h("th", { colspan: String(params.length), class: "col-group", text: "Params" }) : null,
      metrics.length ? h("th", { colspan: String(metrics.length), class: "col-group", text: "Metrics (last value)" }) : null);
    const body = h("tbody");
    let lastProject = null;
    for (const r of data.runs) {
      if (state.group === "project" && r.project !== lastProject) {
        lastProject = r.project;
        body.append(h("tr", { class: "group-row" }, h("td", { colspan: String(ncols) }, h("span", { class: "group-name", text: r.project }))));
      }
      const cb = h("input", { type: "checkbox", class: "select-run", "data-run-id": r.id });
      cb.checked = state.selected.has(r.id);
      cb.addEventListener("change", () => {
        if (cb.checked) state.selected.add(r.id);
        else state.selected.delete(r.id);
        updateSelection();
      });
      body.append(h("tr", { class: `run-row${r.live ? " live" : ""}`, "data-run-id": r.id },
        h("td", { class: "check" }, cb),
        h("td", null, statusBadge(r)),
        h("td", { class: "muted", text: r.project }),
        h("td", { class: "name" }, link(`/runs/${encodeURIComponent(r.id)}`, r.name || r.id),
          (r.tags || []).map((t) => h("span", { class: "tag", text: t }))),
        h("td", { class: "nowrap", title: fmtTime(r.created_at), text: fmtTime(r.created_at).slice(0, 16) }),
        h("td", { class: "num nowrap", text: fmtDuration(r.duration) }),
        h("td", { text: r.user ?? "" }),
        h("td", { text: r.host ?? "" }),
        params.map((k) => h("td", { class: "col-param", text: k in (r.params || {}) ? fmtValue(r.params[k]) : "" })),
        metrics.map((k) => {
          const m = (r.metrics || {})[k];
          if (!m) return h("td", { class: "num" });
          return h("td", {
            class: `num${isNonFinite(m.last) ? " nonfinite" : ""}`,
            title: `last ${fmtNum(m.last)} · min ${fmtNum(m.min)} · max ${fmtNum(m.max)} · step ${m.step} · ${m.count} points`,
            text: fmtNum(m.last),
          });
        }),
      ));
    }
    if (!data.runs.length) {
      body.append(h("tr", { class: "empty-row" }, h("td", { colspan: String(ncols), class: "muted", text: "No runs match." })));
    }
    table.append(h("thead", null, params.length || metrics.length ? groups : null, head), body);
  }

  function renderPager(data) {
    clear(pager);
    const from = data.total ? data.offset + 1 : 0;
    const to = data.offset + data.runs.length;
    const prev = h("button", { class: "btn", type: "button", id: "page-prev", disabled: data.offset <= 0 }, "‹ Prev");
    const next = h("button", { class: "btn", type: "button", id: "page-next", disabled: to >= data.total }, "Next ›");
    prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refresh(); });
    next.addEventListener("click", () => { state.offset += PAGE; refresh(); });
    pager.append(h("span", { class: "muted", text: `${from.toLocaleString()}–${to.toLocaleString()} of ${data.total.toLocaleString()}` }), prev, next);
  }

  let seq = 0;
  let liveTimer = null;
  async function refresh({ quiet = false } = {}) {
    const mine = ++seq;
    syncUrl();
    try {
      const data = await getJSON("/api/runs", {
        offset: state.offset, limit: PAGE, where: state.where, q: state.q,
        order_by: state.order, group: state.group === "project" ? "project" : "",
      });
      if (mine !== seq || ctx.stale()) return;
      state.data = data;
      clear(errorSlot);
      whereInput.classList.remove("invalid");
      totalEl.textContent = String(data.total);
      renderPicker(data);
      renderTable(data);
      renderPager(data);
      clearTimeout(liveTimer);
      if (data.runs.some((r) => r.live)) liveTimer = setTimeout(() => { if (!ctx.stale()) refresh({ quiet: true }); }, 3000);
    } catch (err) {
      if (mine !== seq || ctx.stale()) return;
      if (quiet) return;
      clear(errorSlot);
      if (err instanceof ApiError && err.kind === "query") {
        whereInput.classList.add("invalid");
        errorSlot.append(whereErrorBox({ ...err, message: err.message, expression: err.expression ?? state.where }));
      } else {
        errorSlot.append(h("div", { class: "error", text: `Could not load runs: ${err.message}` }));
      }
    }
    ctx.ready();
  }
  ctx.onLeave(() => clearTimeout(liveTimer));
  await refresh();
}
