// Formatting of numbers, times, sizes and values for tables.

const NONFINITE = new Set(["NaN", "Infinity", "-Infinity"]);

export function isNonFinite(v) {
  return typeof v === "string" && NONFINITE.has(v);
}

export function fmtNum(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v === "Infinity" ? "+inf" : v === "-Infinity" ? "-inf" : v;
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return Number(v.toPrecision(4)).toExponential();
  return String(Number(v.toPrecision(5)));
}

export function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number" || isNonFinite(v)) return fmtNum(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(t) {
  if (t === null || t === undefined) return "";
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export function fmtSize(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${x.toFixed(1)} ${units[i]}`;
}

export function shortDigest(d) {
  if (!d) return "";
  const i = d.indexOf(":");
  const hex = i >= 0 ? d.slice(i + 1) : d;
  return (i >= 0 ? d.slice(0, i + 1) : "") + hex.slice(0, 12);
}

/** A where-language field for a metric or param key (backticks when the key needs them). */
export function fieldFor(prefix, key) {
  if (/^[A-Za-z0-9_./-]+$/.test(key) && /^[A-Za-z_]/.test(key)) return `${prefix}.${key}`;
  return `${prefix}.\`${key.replace(/\\/g, "\\\\").replace(/`/g, "\\`")}\``;
}

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

/** Short tick labels for chart axes: 24.5G, 0.0012, 1.5e-7. */
export function fmtAxis(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  if (a >= 1e4) {
    for (const [f, s] of SI) if (a >= f) return `${Number((v / f).toPrecision(4))}${s}`;
  }
  if (a !== 0 && a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}
