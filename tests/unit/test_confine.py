"""Confinement pieces without QEMU: cgroup plans on a fake hierarchy, POSIX ACL encoding
and grants, the setpriv prefix, the crash-restart policy, settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from virtkit.daemon.domains.autorestart import RestartPolicy
from virtkit.daemon.settings import Settings
from virtkit.errors import ConfigError, HostError
from virtkit.runtime import access, cgroup, confine


def fake_root(tmp_path: Path, controllers: str) -> Path:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_cgroup_limits_written_when_controllers_exist(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "cpu memory pids")
    plan = cgroup.prepare(root, "web", 1024)
    scope = root / "virtkit.slice" / "web.scope"
    assert plan.path == str(scope) and plan.note == ""
    assert (scope / "memory.max").read_text() == str((1024 + 512) << 20)
    assert (scope / "pids.max").read_text() == "1024"
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids"
    cgroup.remove(plan.path)  # a real cgroup dir holds only kernel files; here: not empty
    assert scope.exists()


def test_cgroup_without_controllers_reports_why(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "hugetlb")
    plan = cgroup.prepare(root, "web", 256)
    assert plan.path and plan.dirs == (plan.path,)  # still placed in its own cgroup
    assert "no memory/pids limit" in plan.note and not plan.limits
    assert cgroup.prepare(None, "web", 256).note.startswith("no cgroup hierarchy")
    ro = tmp_path / "ro-parent" / "cg"  # mkdir under a missing parent: not writable
    assert "not writable" in cgroup.prepare(ro, "web", 256).note


def test_hybrid_host_takes_memory_and_pids_from_cgroup_v1(tmp_path: Path) -> None:
    """systemd's hybrid layout: cgroup2 at .../unified without controllers, memory and pids
    on v1; the v1 scopes go under the daemon's own v1 cgroup."""
    mi = tmp_path / "mountinfo"
    base = tmp_path / "sys"
    mi.write_text(
        f"30 25 0:26 / {base} rw - tmpfs tmpfs rw,mode=755\n"
        f"31 30 0:27 / {base}/memory rw - cgroup cgroup rw,memory\n"
        f"32 30 0:28 / {base}/pids rw - cgroup cgroup rw,pids\n"
        f"33 30 0:29 / {base}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        f"34 30 0:30 / {base}/unified rw - cgroup2 cgroup2 rw\n"
    )
    own = tmp_path / "self-cgroup"
    own.write_text("5:pids:/\n4:memory:/jobs/j1\n3:cpu,cpuacct:/\n0::/\n")
    for d in ("memory/jobs/j1", "pids", "unified"):
        (base / d).mkdir(parents=True)
    (base / "unified" / "cgroup.controllers").write_text("\n")
    layout = cgroup.detect(mi, own)
    assert layout.unified == base / "unified"
    assert layout.v1 == {"memory": base / "memory/jobs/j1", "pids": base / "pids"}
    plan = cgroup.prepare(layout, "web-1a2b3c4d", 256)
    mem = base / "memory/jobs/j1/virtkit.slice/web-1a2b3c4d.scope"
    pids = base / "pids/virtkit.slice/web-1a2b3c4d.scope"
    v2 = base / "unified/virtkit.slice/web-1a2b3c4d.scope"
    assert plan.dirs == (str(v2), str(mem), str(pids)) and plan.note == ""
    assert (mem / "memory.limit_in_bytes").read_text() == str((256 + 512) << 20)
    assert (pids / "pids.max").read_text() == "1024"
    assert plan.limits == {"memory:memory.limit_in_bytes": str((256 + 512) << 20),
                           "pids:pids.max": "1024"}  # fmt: skip
    assert plan.procs == tuple(f"{d}/cgroup.procs" for d in plan.dirs)
    # only v1 (no cgroup2 at all): the memory scope is the main one
    plan = cgroup.prepare(cgroup.Layout(None, layout.v1), "db", 64)
    assert plan.path.endswith("memory/jobs/j1/virtkit.slice/db.scope") and not plan.note


def test_cgroup2_mount_found_in_mountinfo(tmp_path: Path) -> None:
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755\n"
        "35 30 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
    )
    assert cgroup.cgroup2_mount(mi) == Path("/sys/fs/cgroup/unified")
    mi.write_text("30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
    assert cgroup.cgroup2_mount(mi) is None


def test_acl_entries_and_mask() -> None:
    base = access._from_mode(0o640)
    out = access.with_user(base, 995, access.R | access.W)
    assert out == sorted(out, key=lambda e: (e[0], e[2]))
    assert (access.USER, 6, 995) in out
    assert (access.MASK, 6, access.UNDEFINED_ID) in out  # group_obj r + ours rw
    again = access.with_user(out, 995, access.X)
    assert (access.USER, 7, 995) in again and len(again) == len(out)
    assert access._parse(access.encode(again)) == again


def _lend(path: Path, uid: int, perm: int) -> list[access.Borrow]:
    planned = access.plan(str(path), uid, (uid,), perm)
    for b in planned:
        access.apply(b)
    return planned


def _state(p: Path) -> tuple[int, int, int, bytes | None]:
    st = p.stat()
    try:
        acl: bytes | None = os.getxattr(p, access.XATTR)
    except OSError:
        acl = None
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), acl


@pytest.mark.skipif(os.geteuid() != 0, reason="the QEMU uid is not ours to test as a user")
def test_lent_access_reaches_through_private_directories_and_is_given_back(
    tmp_path: Path,
) -> None:
    uid = 2000054321
    private = tmp_path / "a" / "b"
    private.mkdir(parents=True)
    for d in (tmp_path / "a", private):
        d.chmod(0o700)
    ro, rw = private / "kernel", private / "disk.img"
    ro.write_bytes(b"k")
    ro.chmod(0o600)
    rw.write_bytes(b"d")
    rw.chmod(0o640)
    paths = [tmp_path / "a", private, ro, rw]
    before = {p: _state(p) for p in paths}
    lent = _lend(ro, uid, access.R) + _lend(rw, uid, access.R | access.W)
    assert access.user_perm(str(private), uid) == access.X
    assert access.user_perm(str(tmp_path / "a"), uid) == access.X
    assert access.user_perm(str(ro), uid) == access.R
    assert access.user_perm(str(rw), uid) == access.R | access.W
    assert rw.stat().st_uid == 0  # no owner is changed: an ACL entry for that uid only
    assert stat.S_IMODE(private.stat().st_mode) & 0o007 == 0  # not opened to others
    access.revert_all(lent, lambda u: False)
    assert {p: _state(p) for p in paths} == before  # owner, mode and ACL as they were


@pytest.mark.skipif(os.geteuid() != 0, reason="the QEMU uid is not ours to test as a user")
def test_two_guests_share_a_file_and_an_admins_acl_survives(tmp_path: Path) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(b"b")
    base.chmod(0o600)
    admin = access.with_user(access._from_mode(0o600), 1234, access.R)  # setfacl -m u:1234:r
    os.setxattr(base, access.XATTR, access.encode(admin))
    before = _state(base)
    a, b = 2000000001, 2000000002
    ours = lambda u: u in (a, b)  # noqa: E731
    lent_a = _lend(base, a, access.R)
    lent_b = _lend(base, b, access.R)
    access.revert_all(lent_a, ours)  # the first guest stops: the second keeps its access
    assert access.user_perm(str(base), a) == 0
    assert access.user_perm(str(base), b) == access.R
    assert access.user_perm(str(base), 1234) == access.R
    access.revert_all(lent_b, ours)
    assert _state(base) == before


def test_a_plan_made_before_a_file_is_replaced_is_not_applied(tmp_path: Path) -> None:
    f = tmp_path / "disk.img"
    f.write_bytes(b"x")
    f.chmod(0o600)
    [plan] = [b for b in access.plan(str(f), 2000000003, (), access.R) if b.path == str(f)]
    (tmp_path / "other").write_bytes(b"new")
    (tmp_path / "other").rename(f)  # another inode under the same name
    with pytest.raises(HostError, match="replaced"):
        access.apply(plan)
    assert "replaced" in access.revert(plan, lambda u: False)


def test_wrapper_drops_everything() -> None:
    user = confine.QemuUser("virtkit-qemu", 995, 995, (993,))
    procs = ("/cg/web.scope/cgroup.procs", "/v1/memory/web.scope/cgroup.procs")
    argv = confine.wrapper_argv(user, procs, "/usr/bin/setpriv")
    assert argv[:2] == ["/bin/sh", "-c"] and "umask 0177" in argv[2]
    assert argv[4:7] == [*procs, "--"]
    for flag in ("--reuid=995", "--regid=995", "--groups=993", "--inh-caps=-all",
                 "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs"):  # fmt: skip
        assert flag in argv
    assert argv[-1] == "--"


def test_wrapper_shell_joins_every_cgroup_then_execs(tmp_path: Path) -> None:
    """The real /bin/sh: its pid goes into each cgroup.procs, then the command runs as is."""
    files = [tmp_path / "a.procs", tmp_path / "b.procs"]
    argv = confine.wrapper_argv(confine.QemuUser("x", 1, 1), tuple(map(str, files)), "x")
    shell = argv[: argv.index("--") + 1]
    import subprocess

    out = subprocess.run([*shell, "sh", "-c", 'echo "$$ $0 $1"', "zero", "one"],
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert [f.read_text().strip() for f in files] == [out[0]] * 2 and out[1:] == ["zero", "one"]
    none = subprocess.run([*argv[:4], "--", "echo", "ok"], capture_output=True, text=True)
    assert none.stdout == "ok\n"
    bad = [*argv[:4], str(tmp_path / "missing" / "cgroup.procs"), "--", "true"]
    assert subprocess.run(bad, capture_output=True).returncode == 125


def test_restart_policy_backs_off_and_gives_up() -> None:
    now = [0.0]
    p = RestartPolicy(max_per_window=3, window_s=60, backoff_s=1, clock=lambda: now[0])
    assert [p.on_crash("a"), p.on_crash("a"), p.on_crash("a")] == [1, 2, 4]
    assert p.on_crash("a") is None
    now[0] = 200.0  # a minute later the count starts again
    assert p.on_crash("a") == 1
    assert p.on_crash("b") == 1


def test_settings_confine_values() -> None:
    s = Settings.from_env({"VIRTKIT_CONFINE": "off", "VIRTKIT_QEMU_USER": "nobody"})
    assert (s.confine, s.qemu_user) == ("off", "nobody")
    with pytest.raises(ConfigError, match="VIRTKIT_CONFINE"):
        Settings.from_env({"VIRTKIT_CONFINE": "maybe"})


def test_sandbox_follows_the_capability_probe() -> None:
    import dataclasses

    from virtkit.formats.domfile import domain_from_mapping
    from virtkit.model.domain import Accel
    from virtkit.qemu.argv import SANDBOX, RunPaths, build_argv
    from virtkit.qemu.caps import Caps, MachineInfo

    caps = Caps("/usr/bin/qemu-system-x86_64", "7.2.0",
                {"pc-q35-7.2": MachineInfo("pc-q35-7.2", "q35", 288)}, frozenset({"max"}),
                frozenset(), False, aliases={"q35": "pc-q35-7.2"})  # fmt: skip
    dom = domain_from_mapping({"name": "s", "uuid": "00000000-0000-4000-8000-000000000001"}, "t")
    paths = RunPaths("/q", "/s", "/p", "/l")
    argv = build_argv(dom, caps, paths, Accel.TCG)
    assert argv[argv.index("-sandbox") + 1] == SANDBOX
    assert SANDBOX == "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    no_seccomp = dataclasses.replace(caps, sandbox=False)
    assert "-sandbox" not in build_argv(dom, no_seccomp, paths, Accel.TCG)
    assert Caps.from_json(no_seccomp.to_json()).sandbox is False
