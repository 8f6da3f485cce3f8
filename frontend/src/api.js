// The JSON API (the contract in the server's src/polytrack/dashboard/api.py).

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.kind = error?.kind || "http";
    this.position = error?.position ?? null;
    this.expression = error?.expression ?? null;
  }
}

export async function getJSON(path, params) {
  let url = path;
  if (params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, body?.error);
  return body;
}

export const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`;
