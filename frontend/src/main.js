// The dashboard's entry point: the header, client-side routing (history.pushState) and the
// page lifecycle. Each page gets a context: ready() marks body[data-ready="1"] once its
// first data is drawn (the browser tests wait on it), stale() tells an async page that the
// user has navigated away, onLeave() registers cleanups (timers, charts).
import "./app.css";
import { getJSON } from "./api.js";
import { h, clear } from "./dom.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { comparePage } from "./compare.js";
import { lineagePage } from "./lineage.js";

const main = h("main", { id: "page", class: "page" });
const navLinks = {
  runs: h("a", { href: "/", "data-link": "1", text: "Runs" }),
  compare: h("a", { href: "/compare", "data-link": "1", text: "Compare" }),
  lineage: h("a", { href: "/lineage", "data-link": "1", text: "Lineage" }),
};
const homeInfo = h("span", { class: "home-info" });
const header = h("header", { class: "topbar" },
  h("a", { href: "/", "data-link": "1", class: "brand" }, h("span", { class: "brand-mark" }), "polytrack"),
  h("nav", { class: "topnav" }, Object.values(navLinks)),
  h("span", { class: "spacer" }),
  homeInfo);

let generation = 0;
let leaveHooks = [];

function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  render();
}

async function render() {
  const mine = ++generation;
  for (const f of leaveHooks) {
    try {
      f();
    } catch {
      /* a page's cleanup must not stop the next page */
    }
  }
  leaveHooks = [];
  document.body.dataset.ready = "0";
  clear(main);
  window.scrollTo(0, 0);
  const ctx = {
    navigate,
    stale: () => mine !== generation,
    ready: () => { if (mine === generation) document.body.dataset.ready = "1"; },
    onLeave: (f) => leaveHooks.push(f),
  };
  const path = location.pathname;
  const which = path.startsWith("/runs/") ? "run" : path.startsWith("/compare") ? "compare" : path.startsWith("/lineage") ? "lineage" : "runs";
  document.body.dataset.page = which;
  for (const [k, a] of Object.entries(navLinks)) a.classList.toggle("active", k === which || (k === "runs" && which === "run"));
  document.title = "polytrack";
  try {
    if (which === "run") await runPage(main, ctx, decodeURIComponent(path.slice("/runs/".length).replace(/\/$/, "")));
    else if (which === "compare") await comparePage(main, ctx);
    else if (which === "lineage") await lineagePage(main, ctx);
    else await runsPage(main, ctx);
  } catch (err) {
    if (!ctx.stale()) {
      main.append(h("div", { class: "error big", text: `Something went wrong: ${err.message}` }));
      ctx.ready();
    }
    console.error(err);
  }
}

document.addEventListener("click", (ev) => {
  const a = ev.target instanceof Element ? ev.target.closest("a[data-link]") : null;
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

document.body.append(header, main);
getJSON("/api/info").then((info) => {
  homeInfo.textContent = `${info.home} · ${info.run_count.toLocaleString()} runs · v${info.version}`;
  homeInfo.title = info.home;
}).catch(() => {});
render();
