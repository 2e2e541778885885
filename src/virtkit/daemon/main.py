"""virtkitd: the daemon process. ``virtkitd [--mode system|session] [--foreground]``.

One daemon per state directory and per runtime directory (an exclusive flock on
each, statedir.py). Guests are not children in any sense that matters: stopping or
killing the daemon leaves them running, and the next daemon re-attaches to them.
The daemon runs with umask 077: what it writes in the state directory (store, logs,
keys) is its own; the confined QEMU reaches its files through ACLs (confinement.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

from virtkit.errors import DaemonError, VirtkitError
from virtkit.paths import Paths, paths_for


def _lock(paths: Paths) -> int:
    fd = os.open(paths.run_dir / "virtkitd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DaemonError(
            f"another virtkitd already serves {paths.run_dir} (state {paths.state_dir})"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def serve(paths: Paths, ui_listen: str | None = None, listen_tls: str | None = None) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn without its own signal handling: ours stops it and guests keep running."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    from virtkit.daemon.api.app import create_app
    from virtkit.daemon.service import Service
    from virtkit.daemon.settings import Settings

    svc = Service(paths, settings=Settings.from_env())
    await svc.open()
    app = create_app(svc)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.socket)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off",
        ws_max_size=1 << 20, timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    from virtkit.daemon.api.listeners import secure_socket, start_listeners
    from virtkit.daemon.api.uilisten import start_ui  # the browser listener (web UI), optional

    # The other listeners first: once the main socket answers, everything does (clients
    # and tests take an answering main socket as "the daemon is up").
    extra: list[Any] = []
    ui = None
    try:  # the read-only socket, and the TLS listener (--listen-tls) if configured
        extra = await start_listeners(app, paths, listen_tls or svc.settings.listen_tls,
                                      svc.settings.tls_dir)  # fmt: skip
        ui = await start_ui(app, svc.settings.ui_listen if ui_listen is None else ui_listen)
    except BaseException:
        for lst in extra:
            await lst.stop()
        await svc.close()
        raise
    # bound and given its permissions before it listens: no client ever sees it open wider
    main_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    main_sock.bind(str(paths.socket))
    secure_socket(paths.socket, paths.mode)  # 0660 root:virtkit (system), 0600 (session)
    main_sock.listen(128)
    main_sock.setblocking(False)
    task = asyncio.create_task(server.serve(sockets=[main_sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if server.started:
        logging.getLogger("virtkit.daemon").info("listening on %s", paths.socket)
    try:
        await task
    finally:
        if ui is not None:
            await ui.stop()
        for lst in extra:
            await lst.stop()
        await svc.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="virtkitd", description="the virtkit daemon")
    ap.add_argument("--mode", choices=["system", "session"], default=None)
    ap.add_argument("--log-level", default=os.environ.get("VIRTKIT_LOG_LEVEL", "INFO"))
    ap.add_argument("--log-stderr", action="store_true", help="log to stderr instead of a file")
    ap.add_argument("--ui-listen", default=None, metavar="HOST:PORT",
                    help="web UI listener (default 127.0.0.1:8738; none = off)")  # fmt: skip
    ap.add_argument("--listen-tls", default=None, metavar="ADDR:PORT",
                    help="remote API: TLS 1.3, client certificates (virtkit pki)")  # fmt: skip
    args = ap.parse_args(argv)
    paths = paths_for(args.mode)
    os.umask(0o077)  # before anything is created: the store, its -wal/-shm, every log
    from virtkit.daemon import statedir

    try:
        paths.ensure()
        state_fd = statedir.lock_state(paths)
        try:
            lock_fd = _lock(paths)
        except BaseException:
            os.close(state_fd)
            raise
    except (VirtkitError, OSError) as exc:
        print(f"virtkitd: error: {exc}", file=sys.stderr)
        return 6
    handler: logging.Handler = (
        logging.StreamHandler() if args.log_stderr else logging.FileHandler(paths.daemon_log)
    )
    from virtkit.formats.redact import SecretFilter

    handler.addFilter(SecretFilter())  # no VNC/cloud-init password in any log line
    logging.basicConfig(
        level=args.log_level.upper(), handlers=[handler],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    try:
        for fixed in statedir.harden(paths):  # an older virtkit's 0755/0644 state directory
            logging.getLogger("virtkit.daemon").warning("state directory permissions: %s", fixed)
    except OSError as exc:
        print(f"virtkitd: error: cannot fix the modes in {paths.state_dir}: {exc}; make it "
              f"owner-only (chmod -R go= {paths.state_dir})", file=sys.stderr)  # fmt: skip
        os.close(lock_fd)
        os.close(state_fd)
        return 6
    try:
        asyncio.run(serve(paths, args.ui_listen, args.listen_tls))
    except VirtkitError as exc:
        print(f"virtkitd: error: {exc}", file=sys.stderr)
        return 6
    finally:
        os.close(lock_fd)
        os.close(state_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
