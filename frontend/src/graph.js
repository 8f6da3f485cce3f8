// The lineage graph: @dagrejs/dagre computes the layout, SVG draws it. Run nodes link to
// their run page, data nodes to the lineage page of their digest.
import dagre from "@dagrejs/dagre";
import { h, svg, clear } from "./dom.js";

const NODE_H = 36;
const CHAR_W = 7;

function nodeHref(n) {
  if (n.kind === "run" && n.run_id) return `/runs/${encodeURIComponent(n.run_id)}`;
  if (n.digest) return `/lineage?ref=${encodeURIComponent(n.digest)}`;
  return null;
}

/**
 * @param {HTMLElement} container `#lineage-graph`
 * @param {{nodes: object[], edges: object[]}} graph
 * @param {(href: string) => void} navigate
 * @param {string|null} focus the node id to highlight
 */
export function drawGraph(container, graph, navigate, focus = null) {
  clear(container);
  const nodes = graph?.nodes || [];
  container.dataset.nodes = String(nodes.length);
  container.dataset.edges = String((graph?.edges || []).length);
  if (!nodes.length) {
    container.append(h("p", { class: "muted", text: "No lineage recorded: this run neither read nor wrote tracked data." }));
    return;
  }
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 60, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) {
    const label = n.label || n.id;
    const text = label.length > 36 ? label.slice(0, 35) + "…" : label;
    g.setNode(n.id, { text, node: n, width: Math.max(90, text.length * CHAR_W + 28), height: NODE_H });
  }
  (graph.edges || []).forEach((e, i) => {
    if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target, { label: e.label }, `e${i}`);
  });
  dagre.layout(g);
  const { width, height } = g.graph();
  const defs = svg(
    "defs",
    {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "edge-arrow" })),
  );
  const root = svg("svg", { class: "graph", width: Math.ceil(width), height: Math.ceil(height), viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}` }, defs);
  for (const e of g.edges()) {
    const pts = g.edge(e).points;
    const d = pts.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
    const title = svg("title", {});
    title.textContent = g.edge(e).label || "";
    root.append(svg("path", { d, class: "edge", "marker-end": "url(#arrow)" }, title));
  }
  for (const id of g.nodes()) {
    const { x, y, width: w, height: hgt, text, node } = g.node(id);
    const href = nodeHref(node);
    const cls = ["node", `node-${node.kind}`, node.status ? `status-${node.status}` : "", id === focus ? "focus" : "", href ? "clickable" : ""].join(" ");
    const title = svg("title", {});
    title.textContent = [node.kind, node.label, node.digest, node.status].filter(Boolean).join("\n");
    const label = svg("text", { x: x, y: y + 4, "text-anchor": "middle", class: "node-label" });
    label.textContent = text;
    const grp = svg(
      "g",
      { class: cls, "data-node-id": id, "data-kind": node.kind, ...(node.run_id ? { "data-run-id": node.run_id } : {}) },
      title,
      svg("rect", { x: x - w / 2, y: y - hgt / 2, width: w, height: hgt, rx: node.kind === "run" ? 6 : 16 }),
      label,
    );
    if (href) grp.addEventListener("click", () => navigate(href));
    root.append(grp);
  }
  container.append(h("div", { class: "graph-scroll" }, root),
    h("div", { class: "graph-legend" },
      h("span", { class: "legend-item legend-run", text: "run" }),
      h("span", { class: "legend-item legend-data", text: "data" }),
      h("span", { class: "legend-item legend-model", text: "model / artifact" })));
}
