// The lineage page: a dataset or model by path, digest or name -> producers, consumers, graph.
import { getJSON } from "./api.js";
import { h, clear } from "./dom.js";
import { drawGraph } from "./graph.js";
import { smallRunsTable } from "./runs.js";

export async function lineagePage(root, ctx) {
  const ref = new URLSearchParams(location.search).get("ref") || "";
  const input = h("input", { id: "lineage-ref", type: "text", class: "input where-input", placeholder: "A data path, a digest (sha256:…) or an artifact name", spellcheck: "false" });
  input.value = ref;
  const go = h("button", { class: "btn btn-primary", type: "submit" }, "Show lineage");
  const form = h("form", { class: "toolbar" }, input, go);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    ctx.navigate(v ? `/lineage?ref=${encodeURIComponent(v)}` : "/lineage");
  });
  const graphBox = h("div", { id: "lineage-graph", class: "lineage-graph" });
  const result = h("div");
  root.append(h("div", { class: "page-head" }, h("h1", null, "Lineage")), form, result);
  if (!ref) {
    result.append(h("p", { class: "muted", text: "Enter a data path or digest to see which runs produced it and which consumed it." }), graphBox);
    ctx.ready();
    return;
  }
  try {
    const g = await getJSON("/api/lineage", { ref, depth: 2 });
    if (ctx.stale()) return;
    const focus = (g.nodes || []).find((n) => n.digest === ref || n.label === ref)?.id ?? null;
    result.append(
      h("div", { class: "grid-2" },
        h("section", { class: "card", id: "producers" }, h("h2", { text: `Produced by (${g.producers.length})` }), smallRunsTable(g.producers)),
        h("section", { class: "card", id: "consumers" }, h("h2", { text: `Consumed by (${g.consumers.length})` }), smallRunsTable(g.consumers))),
      h("section", { class: "card" }, h("h2", { text: "Graph" }), graphBox));
    drawGraph(graphBox, g, ctx.navigate, focus);
  } catch (err) {
    clear(result).append(h("div", { class: "error big", id: "lineage-error", text: err.status === 404 ? `Nothing in this home matches '${ref}'.` : `Could not load the lineage: ${err.message}` }), graphBox);
  }
  ctx.ready();
}
