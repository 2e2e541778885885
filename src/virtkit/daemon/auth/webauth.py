"""Who may use the browser listener: a password, one-time login links, sessions, tokens.

The Unix socket needs none of this (its file mode is the access control). The
TCP listener for browsers (daemon/api/uilisten.py) does:

- ``web-password`` in the state directory (0600, made on first start) is the
  password for the login form. Its HMAC is the key that signs session cookies,
  so replacing the file logs every browser out.
- ``virtkit ui`` / ``virtkit viewer`` ask the Unix socket for a one-time login
  link (``/ui/login?token=...``, single use, two minutes): opening it sets the
  session cookie (HttpOnly, SameSite=Strict) and a CSRF cookie whose value the
  page echoes in the ``X-Virtkit-CSRF`` header of every state-changing request.
- VNC tokens: the websocket -> VNC proxy wants a short-lived token per viewer
  session, bound to one domain.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from virtkit.fsutil import atomic_write_bytes

SESSION_COOKIE = "vk_session"
CSRF_COOKIE = "vk_csrf"
CSRF_HEADER = "x-virtkit-csrf"
SESSION_TTL_S = 12 * 3600.0
LOGIN_TOKEN_TTL_S = 120.0
VNC_TOKEN_TTL_S = 60.0
PASSWORD_FILE = "web-password"


def cookie_names(port: int | None) -> tuple[str, str]:
    """(session, CSRF) cookie names for the listener on ``port``.

    Cookies are per host, not per port: two daemons on 127.0.0.1 (system and session,
    two users) would overwrite each other's session without the port in the name.
    """
    suffix = f"_{port}" if port else ""
    return SESSION_COOKIE + suffix, CSRF_COOKIE + suffix


def listener_port(scope: Mapping[str, Any]) -> int | None:
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else None


def load_password(state_dir: Path) -> str:
    """The web password (made on first use, 0600)."""
    path = state_dir / PASSWORD_FILE
    try:
        text = path.read_text().strip()
        if len(text) >= 16:
            return text
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(24)
    atomic_write_bytes(path, (password + "\n").encode(), mode=0o600)
    return password


class WebAuth:
    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.password_file = state_dir / PASSWORD_FILE
        self._password = load_password(state_dir)
        self._key = hmac.new(self._password.encode(), b"virtkit-session", hashlib.sha256).digest()
        self.clock = clock
        self._login: dict[str, tuple[float, str]] = {}  # token -> (expiry, next path)
        self._vnc: dict[str, tuple[float, str]] = {}  # token -> (expiry, domain)

    # -- password and one-time links --------------------------------------------------------

    def check_password(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._password.encode())

    def login_token(self, next_path: str = "/ui/") -> str:
        self._expire()
        token = secrets.token_urlsafe(24)
        self._login[token] = (self.clock() + LOGIN_TOKEN_TTL_S, safe_next(next_path))
        return token

    def use_login_token(self, token: str) -> str | None:
        """The page to go to, if ``token`` is a live one-time token (it is used up)."""
        self._expire()
        entry = self._login.pop(token, None)
        return entry[1] if entry is not None else None

    # -- sessions ---------------------------------------------------------------------------

    def new_session(self) -> tuple[str, str]:
        """(session cookie value, CSRF token) for a browser that just logged in."""
        expiry = int(self.clock() + SESSION_TTL_S)
        nonce = secrets.token_urlsafe(16)
        body = f"{expiry}.{nonce}"
        return f"{body}.{self._sign(body)}", self.csrf_for(nonce)

    def session_nonce(self, cookie: str | None) -> str | None:
        """The nonce of a valid, unexpired session cookie, else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        expiry, nonce, sig = cookie.split(".")
        if not hmac.compare_digest(sig, self._sign(f"{expiry}.{nonce}")):
            return None
        if not expiry.isdigit() or int(expiry) < self.clock():
            return None
        return nonce

    def csrf_for(self, nonce: str) -> str:
        return self._sign("csrf:" + nonce)[:32]

    def check_csrf(self, nonce: str, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header, self.csrf_for(nonce))

    # -- VNC proxy tokens -------------------------------------------------------------------

    def vnc_token(self, domain: str) -> str:
        self._expire()
        token = secrets.token_urlsafe(24)
        self._vnc[token] = (self.clock() + VNC_TOKEN_TTL_S, domain)
        return token

    def use_vnc_token(self, token: str, domain: str) -> bool:
        """True if ``token`` was issued for ``domain`` and is still live (it is used up)."""
        self._expire()
        entry = self._vnc.get(token)
        if entry is None or not hmac.compare_digest(entry[1].encode(), domain.encode()):
            return False
        del self._vnc[token]
        return True

    # -- helpers ----------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def _expire(self) -> None:
        now = self.clock()
        for table in (self._login, self._vnc):
            for k in [k for k, (exp, _) in table.items() if exp < now]:
                del table[k]


def safe_next(path: str) -> str:
    """Only pages of our own UI: no open redirects (``//evil``, ``https://...``)."""
    if not path.startswith("/ui/") or "//" in path or "\\" in path or "\n" in path:
        return "/ui/"
    return path
