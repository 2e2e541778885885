"""Secrets at rest: the VNC password in the store is sealed with a key kept beside it.

``STATE/secrets.key`` (0600, 32 random bytes, made on first use) is a file of its own,
outside the database: a copy of ``virtkit.db`` (or of its ``-wal``) alone does not
reveal a password. Sealed values are ``vk-sealed:v1:`` + base64(nonce + AES-256-GCM
ciphertext). A value without that prefix is plaintext from an older virtkit; the store
seals it again on open (store.py).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

from virtkit.errors import HostError
from virtkit.fsutil import atomic_write_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from virtkit.daemon.store import Store

PREFIX = "vk-sealed:v1:"
KEY_FILE = "secrets.key"
_AAD = b"virtkit-secret-v1"
SECRET_FIELDS = (("graphics", "password"),)  # where a domain mapping holds secrets
log = logging.getLogger("virtkit.daemon")


class SecretBox:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._key: bytes | None = None

    def _load(self) -> bytes:
        if self._key is None:
            try:
                key = self.key_file.read_bytes()
            except FileNotFoundError:
                key = os.urandom(32)
                atomic_write_bytes(self.key_file, key, mode=0o600)
            except OSError as exc:
                raise HostError(
                    f"cannot read the secrets key {self.key_file} ({exc.strerror}); "
                    "check the permissions of the state directory"
                ) from None
            if len(key) != 32:
                raise HostError(
                    f"{self.key_file} is not a virtkit secrets key (32 bytes); restore it "
                    "from a backup, or move it away to make a new one (stored VNC passwords "
                    "are then lost: define them again)"
                )
            self._key = key
        return self._key

    def seal(self, value: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        ct = AESGCM(self._load()).encrypt(nonce, value.encode(), _AAD)
        return PREFIX + base64.b64encode(nonce + ct).decode()

    def open(self, value: str) -> str | None:
        """The plaintext of a sealed value (a plain one is returned as is); None when the
        key does not open it."""
        if not value.startswith(PREFIX):
            return value
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            return AESGCM(self._load()).decrypt(raw[:12], raw[12:], _AAD).decode()
        except (ValueError, InvalidTag):
            return None

    def seal_mapping(self, data: dict[str, Any]) -> dict[str, Any]:
        """A copy of a domain mapping with its secrets sealed (``data`` is not changed)."""
        return self._map(data, self._seal_value, "")

    def open_mapping(self, data: dict[str, Any], what: str) -> dict[str, Any]:
        """A domain mapping with its secrets opened; one the key cannot open is dropped
        (the domain stays usable) with an error in the log."""
        return self._map(data, self.open, what)

    def _seal_value(self, value: str) -> str:
        return value if value.startswith(PREFIX) else self.seal(value)

    def _map(self, data: dict[str, Any], fn: Any, what: str) -> dict[str, Any]:
        out = data
        for section, key in SECRET_FIELDS:
            part = data.get(section)
            if not isinstance(part, dict) or not isinstance(part.get(key), str):
                continue
            if out is data:
                out = copy.deepcopy(data)
            value = fn(part[key])
            if value is None:
                log.error(
                    "%s: %s.%s cannot be decrypted with %s (replaced or lost key); dropped, "
                    "define the domain again with it", what, section, key, self.key_file,
                )  # fmt: skip
                del out[section][key]
            else:
                out[section][key] = value
        return out


def has_plain_secret(data: dict[str, Any]) -> bool:
    for section, key in SECRET_FIELDS:
        part = data.get(section)
        v = part.get(key) if isinstance(part, dict) else None
        if isinstance(v, str) and not v.startswith(PREFIX):
            return True
    return False


def seal_record(box: SecretBox, record_json: str) -> str:
    """A runtime record (JSON) with the secrets of its ``domain`` sealed."""
    if '"password"' not in record_json:
        return record_json
    data = json.loads(record_json)
    if isinstance(data.get("domain"), dict) and has_plain_secret(data["domain"]):
        data["domain"] = box.seal_mapping(data["domain"])
        return json.dumps(data)
    return record_json


def open_record(box: SecretBox, name: str, record_json: str) -> str:
    if PREFIX not in record_json:
        return record_json
    data = json.loads(record_json)
    if isinstance(data.get("domain"), dict):
        data["domain"] = box.open_mapping(data["domain"], f"runtime record of {name}")
    return json.dumps(data)


def reseal_plaintext(store: Store) -> int:
    """Seal the secrets an older virtkit stored in plaintext; how many rows changed. The
    old pages are overwritten (secure_delete) and the WAL truncated."""
    db = store.db
    domains = [(n, json.loads(c)) for n, c in db.execute("SELECT name, config FROM domains")]
    records = list(db.execute("SELECT name, record FROM runtime"))
    fix_d = [(n, c) for n, c in domains if has_plain_secret(c)]
    fix_r = [(n, r) for n, r in records if seal_record(store.secrets, r) != r]
    if not fix_d and not fix_r:
        return 0
    with store.tx() as tx:
        for n, c in fix_d:
            tx.execute("UPDATE domains SET config=? WHERE name=?",
                       (json.dumps(store.secrets.seal_mapping(c)), n))  # fmt: skip
        for n, r in fix_r:
            tx.execute("UPDATE runtime SET record=? WHERE name=?",
                       (seal_record(store.secrets, r), n))  # fmt: skip
    db.execute("VACUUM")  # no free page keeps an old copy
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.warning("sealed the plaintext VNC passwords of %d stored domains/records with %s",
                len(fix_d) + len(fix_r), store.secrets.key_file)  # fmt: skip
    return len(fix_d) + len(fix_r)
