"""A private virtkit daemon for benchmarks (own state and runtime directories)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType


def cli_argv() -> list[str]:
    """The `virtkit` console script beside this interpreter (what users run), else python -m."""
    script = Path(sys.executable).parent / "virtkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "virtkit.cli"]


class BenchDaemon:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="vkb", dir="/tmp"))
        self.env = dict(os.environ, VIRTKIT_STATE_DIR=str(self.base / "state"),
                        VIRTKIT_RUN_DIR=str(self.base / "run"),
                        # 50 idle 1-vCPU guests on 2 CPUs: past the default 16:1 vCPU ratio
                        VIRTKIT_CPU_ALLOCATION_RATIO="64")  # fmt: skip
        self.socket = self.base / "run" / "virtkitd.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchDaemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "virtkit.daemon", "--log-level", "WARNING"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(str(self.socket))
                return self
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        raise RuntimeError("bench daemon did not come up")

    def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*cli_argv(), *args], env=self.env, capture_output=True,
                              check=True)  # fmt: skip

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        out = subprocess.run(["pgrep", "-f", str(self.base)], capture_output=True, text=True)
        for pid in out.stdout.split():
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
