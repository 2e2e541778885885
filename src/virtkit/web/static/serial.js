// The serial console in the page: xterm.js <-> the daemon's console websocket
// (/v1/domains/NAME/console: a JSON hello, then raw bytes both ways).
import { Terminal } from "./vendor/xterm/xterm.mjs";
import { FitAddon } from "./vendor/xterm-addon-fit/addon-fit.mjs";
import { enc, wsURL } from "./lib.js";

export function openSerial(container, name, { force = false } = {}) {
  const term = new Terminal({
    cursorBlink: true,
    fontSize: 14,
    fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, monospace",
    scrollback: 5000,
    theme: { background: "#0f1419", foreground: "#e6e1cf", cursor: "#f29718" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(container);
  const refit = () => {
    try {
      fit.fit();
    } catch {
      /* not visible yet */
    }
  };
  refit();
  window.addEventListener("resize", refit);
  const url = wsURL(`/v1/domains/${enc(name)}/console${force ? "?force=true" : ""}`);
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  let hello = true;
  const status = { onchange: null, state: "connecting" };
  const set = (s) => {
    status.state = s;
    container.dataset.console = s;
    status.onchange && status.onchange(s);
  };
  set("connecting");
  ws.onmessage = (ev) => {
    if (hello) {
      hello = false;
      let reply = {};
      try {
        reply = JSON.parse(typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data));
      } catch {
        reply = { message: "unexpected reply" };
      }
      if (reply.ok) {
        set("connected");
        term.focus();
      } else {
        term.write(`\r\n\x1b[31m[${reply.message || "console refused"}]\x1b[0m\r\n`);
      }
      return;
    }
    term.write(typeof ev.data === "string" ? ev.data : new Uint8Array(ev.data));
  };
  ws.onclose = (ev) => {
    const why = ev.code === 4409 ? ": another client took it over" : "";
    term.write(`\r\n\x1b[33m[console closed${why}]\x1b[0m\r\n`);
    set(ev.code === 4409 ? "taken" : "closed");
  };
  const encoder = new TextEncoder();
  term.onData((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  });
  return {
    term,
    status,
    close() {
      window.removeEventListener("resize", refit);
      ws.close();
      term.dispose();
    },
  };
}
