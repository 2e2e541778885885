// The machine list: live state (events), CPU and memory sparklines (GET /v1/stats).
import { actionButtons, api, fmtBytes, fmtMiB, flash, h, sparkline, stateBadge } from "../lib.js";

const HISTORY = 40; // samples kept per machine (2 s apart)
const history = new Map(); // name -> { cpu: [], mem: [], last: {t, cpu} }

export function listPage(root) {
  const body = h("tbody");
  const empty = h("p.empty", "No machines yet. ", h("a", { href: "#/new" }, "Create one"), ".");
  const table = h("table.machines",
    h("thead", h("tr", h("th", "Name"), h("th", "State"), h("th", "vCPUs"), h("th", "Memory"),
      h("th", "CPU"), h("th", "Memory used"), h("th", ""))),
    body);
  root.append(h("section.card", h("div.card-head", h("h1", "Machines"),
    h("a.btn.primary", { href: "#/new" }, "New machine")), table, empty));
  let rows = [];
  let infos = new Map();

  async function refresh() {
    try {
      rows = await api("GET", "/v1/domains?all=true");
      const details = await Promise.all(rows.map((d) =>
        api("GET", `/v1/domains/${encodeURIComponent(d.name)}`).catch(() => null)));
      infos = new Map(details.filter(Boolean).map((d) => [d.name, d]));
      draw();
    } catch (e) {
      flash(e.message);
    }
  }

  function draw() {
    empty.hidden = rows.length > 0;
    table.hidden = rows.length === 0;
    body.replaceChildren(...rows.map((d) => {
      const info = infos.get(d.name) || {};
      const hist = history.get(d.name) || { cpu: [], mem: [] };
      const cpuNow = hist.cpu.length ? hist.cpu[hist.cpu.length - 1] : null;
      const memNow = hist.mem.length ? hist.mem[hist.mem.length - 1] : null;
      return h("tr", { dataset: { domain: d.name, state: d.state } },
        h("td", h("a.name", { href: `#/domain/${encodeURIComponent(d.name)}` }, d.name)),
        h("td", stateBadge(d.state)),
        h("td.num", info.vcpus ?? ""),
        h("td.num", info.memory_mib ? fmtMiB(info.memory_mib) : ""),
        h("td.spark-cell", sparkline(hist.cpu, { max: 10 * (info.vcpus || 1), label: "CPU %" }),
          h("span.spark-val", cpuNow === null ? "–" : `${cpuNow.toFixed(0)}%`)),
        h("td.spark-cell", sparkline(hist.mem, { max: (info.memory_mib || 0) * 1024, label: "memory" }),
          h("span.spark-val", memNow === null ? "–" : fmtBytes(memNow * 1024))),
        h("td.actions", actionButtons(d, refresh)));
    }));
  }

  async function sample() {
    try {
      const st = await api("GET", "/v1/stats?groups=cpu,balloon&active=true");
      const seen = new Set();
      for (const d of st.domains) {
        seen.add(d.name);
        const hist = history.get(d.name) || { cpu: [], mem: [], last: null };
        const cpu = Number(d.stats["cpu.time"] || 0);
        if (hist.last && st.timestamp > hist.last.t) {
          const pct = ((cpu - hist.last.cpu) / 1e9 / (st.timestamp - hist.last.t)) * 100;
          hist.cpu.push(Math.max(0, pct));
        }
        hist.last = { t: st.timestamp, cpu };
        hist.mem.push(Number(d.stats["balloon.rss"] || 0));
        hist.cpu = hist.cpu.slice(-HISTORY);
        hist.mem = hist.mem.slice(-HISTORY);
        history.set(d.name, hist);
      }
      for (const name of history.keys()) if (!seen.has(name)) history.delete(name);
      draw();
    } catch (e) {
      if (e.status !== 401) console.warn(e);
    }
  }

  refresh().then(sample);
  const timer = setInterval(sample, 2000);
  const slow = setInterval(refresh, 15000); // belt and braces next to the event stream
  let pending = null;
  return {
    onEvent() {
      clearTimeout(pending);
      pending = setTimeout(refresh, 150); // a burst of events -> one refresh
    },
    dispose() {
      clearInterval(timer);
      clearInterval(slow);
      clearTimeout(pending);
    },
  };
}
