// A unified diff rendered line by line with classes (added, removed, hunk, file header).
import { h } from "./dom.js";

export function renderDiff(patch) {
  const box = h("div", { class: "diff" });
  if (!patch) {
    box.append(h("p", { class: "muted", text: "No uncommitted changes." }));
    return box;
  }
  const table = h("table", { class: "diff-table" });
  let oldNo = 0;
  let newNo = 0;
  for (const line of patch.replace(/\n$/, "").split("\n")) {
    let cls = "ctx";
    let a = "";
    let b = "";
    if (line.startsWith("diff --git") || line.startsWith("index ") || line.startsWith("--- ") || line.startsWith("+++ ") || line.startsWith("new file") || line.startsWith("deleted file") || line.startsWith("similarity") || line.startsWith("rename ")) {
      cls = "file";
    } else if (line.startsWith("@@")) {
      cls = "hunk";
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)/.exec(line);
      if (m) {
        oldNo = Number(m[1]);
        newNo = Number(m[2]);
      }
    } else if (line.startsWith("+")) {
      cls = "add";
      b = newNo++;
    } else if (line.startsWith("-")) {
      cls = "del";
      a = oldNo++;
    } else if (line.startsWith("\\")) {
      cls = "meta";
    } else {
      a = oldNo++;
      b = newNo++;
    }
    table.append(h("tr", { class: `diff-${cls}` },
      h("td", { class: "ln", text: String(a) }),
      h("td", { class: "ln", text: String(b) }),
      h("td", { class: "code", text: line })));
  }
  box.append(table);
  return box;
}
