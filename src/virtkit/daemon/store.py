"""The daemon's state store: SQLite in WAL mode, every write one transaction.

Tables:
  domains  name -> persistent config (JSON), autostart flag
  runtime  name -> runtime record of a running QEMU (JSON); present iff we believe it runs
  domstate name -> last state and reason (so "shut off (crashed)" survives restarts)
  events   sequence-numbered event log (bounded)
  meta     counters (next domain id), one-time markers (default pool created),
           pending on_crash restarts (pending-restart:NAME, autorestart.py)
  pools    storage pool definitions: name, uuid, type, target, autostart, active
  volumes  (pool, name) -> recorded format of each known volume (never probed again)
  intents  (domain, op) -> the plan of a multi-step operation in flight (intents.py)
  borrows  domain -> each owner/ACL change made on a host path for its QEMU, with what
           it replaced (runtime/access.py); reverted when the guest stops
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtkit.daemon import secretbox
from virtkit.daemon.secretbox import SecretBox
from virtkit.errors import ConfigError, HostError

SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
  name TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, config TEXT NOT NULL,
  autostart INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runtime (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domstate (
  name TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, domain TEXT NOT NULL,
  type TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pools (
  name TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, type TEXT NOT NULL, target TEXT NOT NULL,
  autostart INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS volumes (
  pool TEXT NOT NULL, name TEXT NOT NULL, format TEXT NOT NULL, PRIMARY KEY (pool, name));
CREATE TABLE IF NOT EXISTS borrows (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL, uid INTEGER NOT NULL,
  data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS borrows_domain ON borrows (domain);
CREATE TABLE IF NOT EXISTS intents (
  domain TEXT NOT NULL, op TEXT NOT NULL, data TEXT NOT NULL, ts REAL NOT NULL,
  PRIMARY KEY (domain, op));
"""

MAX_EVENTS = 10000


@dataclass(frozen=True)
class StoredDomain:
    name: str
    uuid: str
    config: dict[str, Any]
    autostart: bool


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    ts: float
    domain: str
    type: str
    detail: str


class Store:
    def __init__(self, path: Path, secrets: SecretBox | None = None) -> None:
        # secrets (the VNC password) sealed with a key outside the database (secretbox.py)
        self.secrets = secrets or SecretBox(path.with_name(secretbox.KEY_FILE))
        try:
            # 0600 from creation; SQLite gives the -wal and -shm files the database's mode
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA secure_delete=FAST")  # freed space zeroed (when cheap)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._sync = "FULL"
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise HostError(
                f"cannot open the state database {path}: {exc}; check that the state "
                "directory is writable and not on a full disk"
            ) from None
        self._events_since_trim = 0
        secretbox.reseal_plaintext(self)  # an older virtkit's plaintext VNC passwords

    @contextlib.contextmanager
    def tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. ``durable``: fsync at commit (definitions); runtime records,
        states and events skip it: they survive a daemon crash either way, and after a
        power loss reconcile rebuilds them from the processes that really run."""
        try:
            mode = "FULL" if durable else "NORMAL"
            if mode != self._sync:
                self.db.execute(f"PRAGMA synchronous={mode}")
                self._sync = mode
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _host(exc) from None
        try:
            yield self.db
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise  # the caller's to explain (a duplicate name or uuid)
            raise _host(exc) from None  # disk full, read-only file system, I/O error
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise _host(exc) from None

    # -- domains --------------------------------------------------------------------------

    def load_domains(self) -> list[StoredDomain]:
        rows = self.db.execute("SELECT name, uuid, config, autostart FROM domains").fetchall()
        return [StoredDomain(n, u, self.secrets.open_mapping(json.loads(c), f"domain {n}"),
                             bool(a)) for n, u, c, a in rows]  # fmt: skip

    def insert_domain(self, name: str, uuid: str, config: dict[str, Any]) -> None:
        now = time.time()
        try:
            with self.tx() as db:
                db.execute(
                    "INSERT INTO domains (name, uuid, config, created, updated) VALUES (?,?,?,?,?)",
                    (name, uuid, json.dumps(self.secrets.seal_mapping(config)), now, now),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"a domain named {name!r} or with uuid {uuid} already exists"
            ) from None

    def update_domain(self, name: str, config: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE domains SET config=?, updated=? WHERE name=?",
                (json.dumps(self.secrets.seal_mapping(config)), time.time(), name),
            )

    def delete_domain(self, name: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM domains WHERE name=?", (name,))
            db.execute("DELETE FROM domstate WHERE name=?", (name,))
            db.execute("DELETE FROM meta WHERE key=?", (f"pending-restart:{name}",))

    def set_autostart(self, name: str, on: bool) -> None:
        with self.tx() as db:
            db.execute("UPDATE domains SET autostart=? WHERE name=?", (int(on), name))

    # -- runtime records and states -------------------------------------------------------

    def load_runtime(self) -> dict[str, str]:
        rows = self.db.execute("SELECT name, record FROM runtime").fetchall()
        return {n: secretbox.open_record(self.secrets, n, r) for n, r in rows}

    def put_runtime(self, name: str, record_json: str, state: str, reason: str) -> None:
        with self.tx(durable=False) as db:
            sealed = secretbox.seal_record(self.secrets, record_json)
            db.execute("INSERT OR REPLACE INTO runtime VALUES (?,?)", (name, sealed))
            db.execute("INSERT OR REPLACE INTO domstate VALUES (?,?,?)", (name, state, reason))

    def drop_runtime(self, name: str, state: str, reason: str) -> None:
        with self.tx(durable=False) as db:
            db.execute("DELETE FROM runtime WHERE name=?", (name,))
            db.execute("INSERT OR REPLACE INTO domstate VALUES (?,?,?)", (name, state, reason))

    # -- borrowed host paths (owner/mode/ACL changes to undo) --------------------------------

    def add_borrows(self, domain: str, uid: int, items: list[dict[str, Any]]) -> None:
        """Recorded durably before QEMU may use them: a crash leaves nothing unrecorded."""
        if not items:
            return
        with self.tx() as db:
            db.executemany(
                "INSERT INTO borrows (domain, uid, data) VALUES (?,?,?)",
                [(domain, uid, json.dumps(i)) for i in items],
            )

    def borrows(self, domain: str) -> list[tuple[int, dict[str, Any]]]:
        rows = self.db.execute(
            "SELECT seq, data FROM borrows WHERE domain=? ORDER BY seq", (domain,)
        ).fetchall()
        return [(seq, json.loads(data)) for seq, data in rows]

    def borrowing_domains(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT domain FROM borrows")]

    def move_borrows(self, domain: str, heir: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE borrows SET domain=? WHERE domain=?", (heir, domain))

    def drop_borrows(self, seqs: list[int]) -> None:
        with self.tx() as db:
            db.executemany("DELETE FROM borrows WHERE seq=?", [(s,) for s in seqs])

    def load_states(self) -> dict[str, tuple[str, str]]:
        rows = self.db.execute("SELECT name, state, reason FROM domstate").fetchall()
        return {n: (s, r) for n, s, r in rows}

    def next_id(self) -> int:
        with self.tx(durable=False) as db:
            row = db.execute("SELECT value FROM meta WHERE key='next_id'").fetchone()
            n = int(row[0]) if row else 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(n + 1),))
        return n

    # -- events ---------------------------------------------------------------------------

    def add_event(self, domain: str, type_: str, detail: str, ts: float) -> int:
        with self.tx(durable=False) as db:
            cur = db.execute(
                "INSERT INTO events (ts, domain, type, detail) VALUES (?,?,?,?)",
                (ts, domain, type_, detail),
            )
            seq = int(cur.lastrowid or 0)
            self._events_since_trim += 1
            if self._events_since_trim >= 500:
                self._events_since_trim = 0
                db.execute("DELETE FROM events WHERE seq <= ?", (seq - MAX_EVENTS,))
        return seq

    def events(
        self, after: int = 0, domain: str | None = None, limit: int = 1000
    ) -> list[StoredEvent]:
        q = "SELECT seq, ts, domain, type, detail FROM events WHERE seq > ?"
        args: list[Any] = [after]
        if domain:
            q += " AND domain = ?"
            args.append(domain)
        q += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [StoredEvent(*row) for row in self.db.execute(q, args).fetchall()]

    def close(self) -> None:
        self.db.close()


def _host(exc: sqlite3.Error) -> HostError:
    return HostError(
        f"the state database refused a write ({exc}); the previous state is intact. "
        "Check free space and permissions of the state directory"
    )


@dataclass(frozen=True)
class StoredPool:
    name: str
    uuid: str
    type: str
    target: str
    autostart: bool
    active: bool


class PoolStore:
    """Pool and volume records, on the daemon's store (same connection, same rules)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_meta(self, key: str) -> str | None:
        row = self.store.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.store.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def pools(self) -> list[StoredPool]:
        q = "SELECT name, uuid, type, target, autostart, active FROM pools ORDER BY name"
        return [StoredPool(n, u, t, p, bool(a), bool(x)) for n, u, t, p, a, x in
                self.store.db.execute(q).fetchall()]  # fmt: skip

    def insert_pool(self, p: StoredPool) -> None:
        try:
            with self.store.tx() as db:
                db.execute(
                    "INSERT INTO pools (name, uuid, type, target, autostart, active, created) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (p.name, p.uuid, p.type, p.target, int(p.autostart), int(p.active),
                     time.time()),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise ConfigError(f"a pool named {p.name!r} already exists") from None

    def set_pool(self, name: str, *, autostart: bool | None = None,
                 active: bool | None = None) -> None:  # fmt: skip
        with self.store.tx() as db:
            if autostart is not None:
                db.execute("UPDATE pools SET autostart=? WHERE name=?", (int(autostart), name))
            if active is not None:
                db.execute("UPDATE pools SET active=? WHERE name=?", (int(active), name))

    def delete_pool(self, name: str) -> None:
        with self.store.tx() as db:
            db.execute("DELETE FROM pools WHERE name=?", (name,))
            db.execute("DELETE FROM volumes WHERE pool=?", (name,))

    def volumes(self, pool: str) -> dict[str, str]:
        q = "SELECT name, format FROM volumes WHERE pool=? ORDER BY name"
        return dict(self.store.db.execute(q, (pool,)).fetchall())

    def put_volume(self, pool: str, name: str, fmt: str) -> None:
        with self.store.tx() as db:
            db.execute("INSERT OR REPLACE INTO volumes VALUES (?,?,?)", (pool, name, fmt))

    def drop_volume(self, pool: str, name: str) -> None:
        with self.store.tx() as db:
            db.execute("DELETE FROM volumes WHERE pool=? AND name=?", (pool, name))

    def sync_volumes(self, pool: str, add: dict[str, str], drop: list[str]) -> None:
        with self.store.tx() as db:
            db.executemany("INSERT OR REPLACE INTO volumes VALUES (?,?,?)",
                           [(pool, n, f) for n, f in add.items()])  # fmt: skip
            db.executemany("DELETE FROM volumes WHERE pool=? AND name=?",
                           [(pool, n) for n in drop])  # fmt: skip
