// The graphical console in the page: noVNC <-> the daemon's websocket -> VNC proxy.
// Each connection asks for a fresh one-use token (POST /v1/domains/NAME/vnc/session).
import RFB from "./vendor/novnc/core/rfb.js";
import { api, enc, wsURL } from "./lib.js";

export async function openDisplay(container, name, onStatus) {
  const session = await api("POST", `/v1/domains/${enc(name)}/vnc/session`);
  const rfb = new RFB(container, wsURL(session.path), { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.background = "#0f1419";
  const say = (s) => {
    container.dataset.display = s;
    onStatus && onStatus(s);
  };
  say("connecting");
  rfb.addEventListener("connect", () => say("connected"));
  rfb.addEventListener("disconnect", (e) => say(e.detail.clean ? "disconnected" : "connection lost"));
  rfb.addEventListener("credentialsrequired", () => {
    const password = window.prompt(`VNC password for ${name}`);
    if (password === null) rfb.disconnect();
    else rfb.sendCredentials({ password });
  });
  rfb.addEventListener("securityfailure", (e) => say(`refused: ${e.detail.reason || "bad password"}`));
  return rfb;
}
