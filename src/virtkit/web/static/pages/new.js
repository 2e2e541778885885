// Create a machine: the form becomes virt-install's options, which the daemon parses
// and runs as one install job (POST /v1/install/argv), exactly like `virtkit install`.
import { api, flash, h } from "../lib.js";

const SOURCES = {
  cdrom: "Install from an ISO (CD-ROM)",
  location: "Install from an ISO, tree or URL (kernel + initrd, extra args)",
  import: "Import an existing disk or cloud image",
  kernel: "Boot a kernel + initrd directly",
};

function field(label, input, hint) {
  return h("label.field", h("span.label", label), input, hint ? h("span.hint", hint) : null);
}

export function buildArgv(f) {
  const v = (n) => (f.elements[n] ? f.elements[n].value.trim() : "");
  const argv = ["--name", v("name"), "--memory", v("memory"), "--vcpus", v("vcpus")];
  if (v("os_variant")) argv.push("--os-variant", v("os_variant"));
  const source = f.elements.source.value;
  const diskPath = v("disk_path");
  const diskSize = v("disk_size");
  if (source === "cdrom") argv.push("--cdrom", v("media"));
  if (source === "location") {
    argv.push("--location", v("media"));
    if (v("extra_args")) argv.push("--extra-args", v("extra_args"));
  }
  if (source === "kernel") {
    let boot = `kernel=${v("kernel")}`;
    if (v("initrd")) boot += `,initrd=${v("initrd")}`;
    if (v("cmdline")) boot += `,kernel_args="${v("cmdline").replace(/"/g, "")}"`;
    argv.push("--boot", boot);
  }
  if (source === "import") {
    argv.push("--import", "--disk", `path=${v("media")}`);
    if (f.elements.cloud_init.checked) argv.push("--cloud-init", "root-password-generate=on");
  } else if (diskPath) {
    argv.push("--disk", diskSize ? `path=${diskPath},size=${diskSize}` : `path=${diskPath}`);
  }
  const net = f.elements.network.value;
  if (net === "bridge") argv.push("--network", `bridge=${v("bridge")}`);
  else argv.push("--network", net);
  argv.push("--graphics", f.elements.graphics.value);
  if (f.elements.virt_type.value) argv.push("--virt-type", f.elements.virt_type.value);
  if (f.elements.autostart.checked) argv.push("--autostart");
  argv.push("--noautoconsole");
  return argv;
}

export function newPage(root) {
  const name = h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_][A-Za-z0-9_.\\-]{0,63}",
    placeholder: "web1", autocomplete: "off" });
  const sourceSel = h("select", { name: "source" },
    Object.entries(SOURCES).map(([k, label]) => h("option", { value: k }, label)));
  const media = h("input", { name: "media", placeholder: "/var/lib/virtkit/iso/debian.iso" });
  const mediaField = field("ISO / location / disk image", media);
  const kernelBox = h("div.grid3",
    field("Kernel", h("input", { name: "kernel", placeholder: "/path/to/vmlinuz" })),
    field("Initrd", h("input", { name: "initrd", placeholder: "/path/to/initrd.img" })),
    field("Kernel command line", h("input", { name: "cmdline", value: "console=ttyS0" })));
  const extra = field("Extra kernel args (--extra-args)",
    h("input", { name: "extra_args", placeholder: "console=ttyS0" }));
  const cloud = h("label.check", h("input", { type: "checkbox", name: "cloud_init" }),
    " cloud-init seed (generate a root password)");
  const diskPath = h("input", { name: "disk_path", placeholder: "(none)" });
  const diskBox = h("div.grid2",
    field("Disk image path", diskPath, "created as sparse qcow2 when a size is given"),
    field("Disk size (GiB)", h("input", { name: "disk_size", type: "number", min: "1", step: "1", placeholder: "10" })));
  const bridge = h("input", { name: "bridge", placeholder: "br0" });
  const netSel = h("select", { name: "network" },
    h("option", { value: "user" }, "User-mode (NAT, no setup)"),
    h("option", { value: "bridge" }, "Bridge…"),
    h("option", { value: "none" }, "No network"));
  const bridgeField = field("Bridge", bridge);
  const preview = h("pre.argv");
  const submit = h("button.btn.primary", { type: "submit" }, "Create and start");
  const dry = h("button.btn", { type: "button" }, "Check (dry run)");
  const result = h("div.result");

  const form = h("form.card.form", { autocomplete: "off" },
    h("h1", "New machine"),
    h("div.grid3",
      field("Name", name),
      field("Memory (MiB)", h("input", { name: "memory", type: "number", min: "16", value: "512" })),
      field("vCPUs", h("input", { name: "vcpus", type: "number", min: "1", value: "1" }))),
    h("div.grid2",
      field("Install source", sourceSel),
      field("OS variant (optional)", h("input", { name: "os_variant", placeholder: "debian12, rhel9, generic…" }))),
    mediaField, extra, kernelBox, cloud, diskBox,
    h("div.grid2",
      field("Network", netSel),
      field("Graphics", h("select", { name: "graphics" },
        h("option", { value: "vnc" }, "VNC on loopback (graphical console)"),
        h("option", { value: "vnc,listen=socket" }, "VNC on a Unix socket (only via virtkit)"),
        h("option", { value: "none" }, "None (serial console only)")))),
    bridgeField,
    h("div.grid2",
      field("Accelerator", h("select", { name: "virt_type" },
        h("option", { value: "" }, "Automatic (KVM when it really works)"),
        h("option", { value: "kvm" }, "KVM"),
        h("option", { value: "qemu" }, "TCG (emulation)"))),
      h("div")),
    h("label.check", h("input", { type: "checkbox", name: "autostart" }), " start with the daemon"),
    h("details", h("summary", "virt-install options"), preview),
    h("div.buttons", submit, dry),
    result);

  function sync() {
    const s = sourceSel.value;
    mediaField.hidden = s === "kernel";
    kernelBox.hidden = s !== "kernel";
    extra.hidden = s !== "location";
    cloud.hidden = s !== "import";
    diskBox.hidden = s === "import";
    bridgeField.hidden = netSel.value !== "bridge";
    media.required = s !== "kernel";
    form.elements.kernel.required = s === "kernel";
    if (!diskPath.dataset.touched && window.virtkitState && name.value) {
      diskPath.placeholder = `${window.virtkitState}/images/${name.value}.qcow2`;
    }
    preview.textContent = "virtkit install " + buildArgv(form).map(quote).join(" ");
  }
  diskPath.addEventListener("input", () => (diskPath.dataset.touched = "1"));
  form.addEventListener("input", sync);
  form.addEventListener("change", sync);

  async function run(dryRun) {
    if (!form.reportValidity()) return;
    submit.disabled = dry.disabled = true;
    result.replaceChildren(h("p.muted", dryRun ? "Checking…" : "Creating…"));
    try {
      const res = await api("POST", "/v1/install/argv", { argv: buildArgv(form), dry_run: dryRun });
      const n = form.elements.name.value.trim();
      const items = [h("p.ok", dryRun ? "Everything checks out: nothing was created."
        : `Machine ${n} created and started.`)];
      for (const w of res.warnings || []) items.push(h("p.warn", w));
      for (const c of res.created || []) items.push(h("p.muted", `Created ${c}`));
      if (res.root_password) items.push(h("p", "Root password (shown once): ", h("code", res.root_password)));
      if (!dryRun) items.push(h("p", h("a.btn", { href: `#/domain/${encodeURIComponent(n)}` }, `Open ${n}`)));
      result.replaceChildren(...items);
      if (!dryRun) {
        flash(`Created ${n}`, "ok");
        location.hash = `#/domain/${encodeURIComponent(n)}`;
      }
    } catch (e) {
      result.replaceChildren(h("p.error", e.message));
    } finally {
      submit.disabled = dry.disabled = false;
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(false);
  });
  dry.addEventListener("click", () => run(true));
  root.append(form);
  sync();
  name.focus();
  return { dispose() {} };
}

function quote(a) {
  return /^[A-Za-z0-9_./=,:+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`;
}
