// virtkit's web manager: a hash-routed single page over the daemon's /v1 API.
//   #/                      machines, live state and sparklines
//   #/new                   create a machine (virt-install's options, run by the daemon)
//   #/domain/NAME[/TAB]     details (overview | console | display)
import { api, csrfToken, events, flash } from "./lib.js";
import { listPage } from "./pages/list.js";
import { newPage } from "./pages/new.js";
import { domainPage } from "./pages/domain.js";

const view = document.getElementById("view");
let current = null; // { dispose(), onEvent(ev) } of the page on screen

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (current && current.dispose) current.dispose();
  view.replaceChildren();
  let page = "list";
  if (parts[0] === "new") {
    page = "new";
    current = newPage(view);
  } else if (parts[0] === "domain" && parts[1]) {
    page = "domain";
    current = domainPage(view, parts[1], parts[2] || "overview");
  } else {
    current = listPage(view);
  }
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === page);
  }
}

window.addEventListener("hashchange", route);

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await fetch("/ui/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Virtkit-CSRF": csrfToken() },
    });
  } finally {
    location.href = "/ui/login";
  }
});

const live = document.getElementById("live");
events(
  (ev) => current && current.onEvent && current.onEvent(ev),
  (ok) => {
    live.classList.toggle("on", ok);
    live.title = ok ? "live: events stream in as they happen" : "event stream reconnecting…";
  },
);

api("GET", "/v1/version")
  .then((v) => {
    document.getElementById("host").textContent = `${v.mode} · virtkit ${v.version}`;
    window.virtkitState = v.state_dir;
  })
  .catch((e) => flash(e.message));

route();
