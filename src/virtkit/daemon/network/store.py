"""Managed-network records, on the daemon's store (same SQLite connection, same rules).

Table ``networks``: name -> uuid, config (JSON, our format), autostart, active (the daemon
believes it runs), persistent (0: net-create'd, forgotten when destroyed).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from virtkit.daemon.store import Store
from virtkit.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
  name TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, config TEXT NOT NULL,
  autostart INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 0,
  persistent INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL);
"""


@dataclass(frozen=True)
class StoredNetwork:
    name: str
    uuid: str
    config: dict[str, Any]
    autostart: bool
    active: bool
    persistent: bool


class NetStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.tx() as db:
            db.execute(SCHEMA)

    def get_meta(self, key: str) -> str | None:
        row = self.store.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.store.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def all(self) -> list[StoredNetwork]:
        q = "SELECT name, uuid, config, autostart, active, persistent FROM networks ORDER BY name"
        return [StoredNetwork(n, u, json.loads(c), bool(a), bool(x), bool(p))
                for n, u, c, a, x, p in self.store.db.execute(q).fetchall()]  # fmt: skip

    def get(self, name: str) -> StoredNetwork | None:
        for n in self.all():
            if n.name == name:
                return n
        return None

    def insert(self, name: str, uuid: str, config: dict[str, Any], persistent: bool) -> None:
        try:
            with self.store.tx() as db:
                db.execute(
                    "INSERT INTO networks (name, uuid, config, persistent, created) "
                    "VALUES (?,?,?,?,?)",
                    (name, uuid, json.dumps(config), int(persistent), time.time()),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"a network named {name!r} or with uuid {uuid} already exists"
            ) from None

    def update(self, name: str, config: dict[str, Any]) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE networks SET config=? WHERE name=?", (json.dumps(config), name))

    def set(self, name: str, *, autostart: bool | None = None, active: bool | None = None,
            persistent: bool | None = None) -> None:  # fmt: skip
        with self.store.tx() as db:
            for col, value in (("autostart", autostart), ("active", active),
                               ("persistent", persistent)):  # fmt: skip
                if value is not None:
                    db.execute(f"UPDATE networks SET {col}=? WHERE name=?", (int(value), name))

    def delete(self, name: str) -> None:
        with self.store.tx() as db:
            db.execute("DELETE FROM networks WHERE name=?", (name,))
