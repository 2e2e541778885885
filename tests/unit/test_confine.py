"""Confinement pieces without QEMU: cgroup plans on a fake hierarchy, POSIX ACL encoding
and grants, the setpriv prefix, the crash-restart policy, settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from virtkit.daemon.autorestart import RestartPolicy
from virtkit.daemon.settings import Settings
from virtkit.errors import ConfigError
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
    assert plan.path  # the process is still placed in its own cgroup
    assert "memory/pids" in plan.note and "memory.max" in plan.note
    assert cgroup.prepare(None, "web", 256).note.startswith("no cgroup v2")
    ro = tmp_path / "ro-parent" / "cg"  # mkdir under a missing parent: not writable
    assert "not writable" in cgroup.prepare(ro, "web", 256).note


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


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_grant_path_reaches_through_private_directories(tmp_path: Path) -> None:
    uid, gid = 54321, 54321
    private = tmp_path / "a" / "b"
    private.mkdir(parents=True)
    for d in (tmp_path / "a", private):
        d.chmod(0o700)
    ro, rw = private / "kernel", private / "disk.img"
    ro.write_bytes(b"k")
    ro.chmod(0o600)
    rw.write_bytes(b"d")
    rw.chmod(0o600)
    try:
        access.grant_path(str(ro), uid, (gid,), write=False, gid=gid)
        access.grant_path(str(rw), uid, (gid,), write=True, gid=gid)
    except Exception as exc:  # a filesystem without ACLs
        pytest.skip(str(exc))
    assert access.user_perm(str(private), uid) == access.X
    assert access.user_perm(str(tmp_path / "a"), uid) == access.X
    assert access.user_perm(str(ro), uid) == access.R
    assert rw.stat().st_uid == uid and stat.S_IMODE(rw.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.stat().st_mode) & 0o007 == 0  # not opened to others


def test_wrapper_drops_everything() -> None:
    user = confine.QemuUser("virtkit-qemu", 995, 995, (993,))
    argv = confine.wrapper_argv(user, "/cg/web.scope/cgroup.procs", "/usr/bin/setpriv")
    assert argv[:2] == ["/bin/sh", "-c"] and "umask 0177" in argv[2]
    assert argv[4] == "/cg/web.scope/cgroup.procs"
    for flag in ("--reuid=995", "--regid=995", "--groups=993", "--inh-caps=-all",
                 "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs"):  # fmt: skip
        assert flag in argv
    assert argv[-1] == "--"


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
