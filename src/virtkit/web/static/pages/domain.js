// One machine: overview (devices, disks, NICs, snapshots), serial console, display.
import { actionButtons, api, enc, flash, fmtMiB, h, stateBadge } from "../lib.js";

const TABS = { overview: "Overview", console: "Serial console", display: "Display" };

export function domainPage(root, name, tab) {
  if (!TABS[tab]) tab = "overview";
  const head = h("div.card-head");
  const tabs = h("nav.tabs", Object.entries(TABS).map(([k, label]) =>
    h(`a${k === tab ? ".active" : ""}`, { href: `#/domain/${enc(name)}/${k}`, dataset: { tab: k } }, label)));
  const body = h("div.tab-body");
  root.append(h("section.card", head, tabs, body));
  let info = null;
  let config = null;
  let attached = null; // the open console / display, closed on dispose
  let attachedFor = null; // the state it was opened in

  async function refresh() {
    try {
      [info, config] = await Promise.all([
        api("GET", `/v1/domains/${enc(name)}`),
        api("GET", `/v1/domains/${enc(name)}/config`),
      ]);
    } catch (e) {
      head.replaceChildren(h("h1", name));
      body.replaceChildren(h("p.error", e.message), h("p", h("a", { href: "#/" }, "Back to the list")));
      return;
    }
    head.replaceChildren(
      h("h1", name, " ", stateBadge(info.state), h("span.reason", info.reason)),
      h("div.actions", actionButtons(info, refresh)));
    if (tab === "overview") await overview();
    else if (tab === "console") consoleTab();
    else displayTab();
  }

  async function overview() {
    let snaps = [];
    try {
      snaps = await api("GET", `/v1/domains/${enc(name)}/snapshots`);
    } catch {
      snaps = [];
    }
    const c = config;
    const kv = (rows) => h("dl.kv", rows.filter(Boolean).flatMap(([k, v]) => [h("dt", k), h("dd", v)]));
    const boot = c.boot || {};
    const g = c.graphics || { type: "none" };
    body.replaceChildren(
      h("div.grid2",
        h("div", h("h2", "Machine"), kv([
          ["UUID", info.uuid],
          ["vCPUs", `${info.vcpus} (max ${info.max_vcpus})`],
          ["Memory", `${fmtMiB(info.memory_mib)} (max ${fmtMiB(info.max_memory_mib)})`],
          ["Machine", info.machine],
          ["Accelerator", info.accel || "—"],
          ["CPU time", `${info.cpu_time_s.toFixed(1)} s`],
          ["Autostart", info.autostart ? "yes" : "no"],
          info.pid ? ["PID", info.pid] : null,
        ])),
        h("div", h("h2", "Boot and graphics"), kv([
          boot.kernel ? ["Kernel", h("code", boot.kernel)] : null,
          boot.initrd ? ["Initrd", h("code", boot.initrd)] : null,
          boot.cmdline ? ["Command line", h("code", boot.cmdline)] : null,
          ["Firmware", boot.uefi ? "UEFI" : "BIOS"],
          ["Graphics", g.type === "vnc" ? `VNC on ${g.listen || "127.0.0.1"}` : "none"],
        ]))),
      h("h2", "Disks"),
      table(["Target", "Device", "Bus", "Format", "Source"], (c.disks || []).map((d) =>
        [d.target || "", d.device || "disk", d.bus || "", d.format || "", h("code", d.path || "")])),
      h("h2", "Network interfaces"),
      table(["Type", "Source", "Model", "MAC"], (c.nics || []).map((n) =>
        [n.type || "user", n.source || "—", n.model || "virtio", n.mac || "(at start)"])),
      h("h2", "Snapshots"),
      table(["Name", "Kind", "State", "Created", ""], snaps.map((s) => [
        s.current ? h("strong", s.name) : s.name, s.kind, s.state,
        new Date(s.created * 1000).toLocaleString(), s.current ? "current" : ""])),
    );
  }

  function consoleTab() {
    if (attached && attachedFor === "console") return;
    if (info.state !== "running" && info.state !== "paused") {
      body.replaceChildren(h("p.muted", "The serial console is there while the machine runs."));
      return;
    }
    const term = h("div.terminal#serial");
    const bar = h("div.bar", h("span.muted", "Serial console (ttyS0). "),
      h("button.btn", { type: "button", onclick: () => reopen(true) }, "Take over"));
    body.replaceChildren(bar, term);
    const pending = { close() { this.closed = true; } };
    attached = pending;
    attachedFor = "console";
    import("../serial.js").then(({ openSerial }) => {
      if (pending.closed) return;
      attached = openSerial(term, name);
    }).catch((e) => flash(`cannot load the terminal: ${e.message}`));
    function reopen(force) {
      closeAttached();
      import("../serial.js").then(({ openSerial }) => {
        term.replaceChildren();
        attached = openSerial(term, name, { force });
        attachedFor = "console";
      });
    }
  }

  function displayTab() {
    if (attached && attachedFor === "display") return;
    if (info.state !== "running" && info.state !== "paused") {
      body.replaceChildren(h("p.muted", "The display is there while the machine runs."));
      return;
    }
    if (!config.graphics || config.graphics.type !== "vnc") {
      body.replaceChildren(h("p.muted", "This machine has no graphical console (graphics: none). " +
        "Use the serial console, or define it with VNC graphics."));
      return;
    }
    const screen = h("div.screen#display");
    const status = h("span.muted", "connecting…");
    const ctrlAltDel = h("button.btn", { type: "button", onclick: () => attached?.sendCtrlAltDel() }, "Ctrl+Alt+Del");
    const again = h("button.btn", { type: "button", onclick: () => connect() }, "Reconnect");
    body.replaceChildren(h("div.bar", status, ctrlAltDel, again), screen);
    function connect() {
      closeAttached();
      screen.replaceChildren();
      attached = { close() {}, sendCtrlAltDel() {} };
      attachedFor = "display";
      import("../display.js")
        .then(({ openDisplay }) => openDisplay(screen, name, (s) => (status.textContent = s)))
        .then((rfb) => {
          attached = { close: () => rfb.disconnect(), sendCtrlAltDel: () => rfb.sendCtrlAltDel() };
          attachedFor = "display";
        })
        .catch((e) => (status.textContent = e.message));
    }
    connect();
  }

  function closeAttached() {
    if (attached) {
      try {
        attached.close();
      } catch {
        /* already gone */
      }
    }
    attached = null;
    attachedFor = null;
  }

  refresh();
  let pending = null;
  return {
    onEvent(ev) {
      if (ev.domain !== name) return;
      clearTimeout(pending);
      pending = setTimeout(async () => {
        const wasRunning = info && (info.state === "running" || info.state === "paused");
        await refresh();
        const running = info && (info.state === "running" || info.state === "paused");
        if (wasRunning !== running && tab !== "overview") {
          closeAttached();
          if (tab === "console") consoleTab();
          else displayTab();
        }
      }, 150);
    },
    dispose() {
      clearTimeout(pending);
      closeAttached();
    },
  };
}

function table(headers, rows) {
  if (!rows.length) return h("p.muted", "none");
  return h("table.list", h("thead", h("tr", headers.map((t) => h("th", t)))),
    h("tbody", rows.map((r) => h("tr", r.map((c) => h("td", c))))));
}
