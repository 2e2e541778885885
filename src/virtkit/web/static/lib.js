// Small helpers shared by the pages: the API (with the CSRF header), DOM building,
// formatting, sparklines, and the live event stream.

/** The CSRF token the daemon set at login (the cookie's name carries the listener's port). */
export function csrfToken() {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  const m = document.cookie.match(new RegExp(`(?:^|;\\s*)vk_csrf_${port}=([^;]*)`));
  return m ? decodeURIComponent(m[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Call the daemon's /v1 API (the same one the CLI uses). */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-Virtkit-CSRF"] = csrfToken();
  const opts = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401) {
    location.href = "/ui/login?next=" + encodeURIComponent("/ui/" + location.hash);
    throw new ApiError(401, { message: "logged out" });
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const enc = encodeURIComponent;

/** ws:// or wss:// URL of a path on this listener. */
export function wsURL(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

/** h("div.card#x", {onclick}, child, "text", ...): a tiny element builder. */
export function h(spec, attrs, ...children) {
  const [tagAndClasses, id] = spec.split("#");
  const [tag, ...classes] = tagAndClasses.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (id) el.id = id;
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function flash(message, kind = "error") {
  const box = document.getElementById("flash");
  const item = h(`div.flash.${kind}`, message, h("button.link", { onclick: () => item.remove() }, "×"));
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
}

export function fmtMiB(mib) {
  return mib >= 1024 ? `${(mib / 1024).toFixed(mib % 1024 ? 1 : 0)} GiB` : `${mib} MiB`;
}

export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG sparkline of the values (0..max, or 0..100 for percentages). */
export function sparkline(values, { width = 120, height = 28, max = null, label = "" } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const bg = document.createElementNS(SVG, "rect");
  bg.setAttribute("width", width);
  bg.setAttribute("height", height);
  bg.setAttribute("rx", 3);
  bg.setAttribute("class", "spark-bg");
  svg.append(bg);
  if (values.length === 1) values = [values[0], values[0]];
  const top = Math.max(max ?? 0, ...values, 1e-9);
  const n = Math.max(values.length, 2);
  const pts = values.map((v, i) => {
    const x = (i / (n - 1)) * (width - 2) + 1;
    const y = height - 1 - (v / top) * (height - 3);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  if (pts.length) {
    const area = document.createElementNS(SVG, "polygon");
    const last = pts[pts.length - 1].split(",")[0];
    area.setAttribute("points", `1,${height - 1} ${pts.join(" ")} ${last},${height - 1}`);
    area.setAttribute("class", "spark-area");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("class", "spark-line");
    svg.append(area, line);
  }
  return svg;
}

/** The daemon's event stream (server-sent events); EventSource resumes by itself. */
export function events(onEvent, onState) {
  const es = new EventSource("/v1/events/stream", { withCredentials: true });
  es.onopen = () => onState(true);
  es.onerror = () => onState(false);
  es.onmessage = (m) => {
    try {
      onEvent(JSON.parse(m.data));
    } catch (e) {
      console.warn("bad event", e);
    }
  };
  return es;
}

export const ACTIONS = {
  start: { label: "Start", when: ["shut off", "crashed"], cls: "primary" },
  shutdown: { label: "Shut down", when: ["running"] },
  suspend: { label: "Pause", when: ["running"] },
  resume: { label: "Resume", when: ["paused"] },
  reboot: { label: "Reboot", when: ["running"] },
  destroy: { label: "Force off", when: ["running", "paused", "in shutdown", "unknown"], cls: "danger" },
};

export async function act(name, verb) {
  await api("POST", `/v1/domains/${enc(name)}/${verb}`);
  flash(`${ACTIONS[verb]?.label || verb}: ${name}`, "ok");
}

export function actionButtons(d, after) {
  return Object.entries(ACTIONS)
    .filter(([, a]) => a.when.includes(d.state))
    .map(([verb, a]) =>
      h(`button.btn${a.cls ? "." + a.cls : ""}`, {
        type: "button",
        dataset: { action: verb, domain: d.name },
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            await act(d.name, verb);
          } catch (e) {
            flash(e.message);
          } finally {
            after && after();
          }
        },
      }, a.label),
    );
}

export function stateBadge(state) {
  return h(`span.state.s-${state.replace(/\s+/g, "-")}`, state);
}
