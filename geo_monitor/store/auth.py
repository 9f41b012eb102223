"""API keys and web users: who may call the API, as what role, and how their secrets are kept.

Keys look like ``gm_<key id>_<secret>``: the id (public, 16 hex digits) finds
the row in one indexed lookup, and only the SHA-256 of the whole key is
stored. A plain hash is enough for keys: they carry 256 random bits, so no
dictionary or brute force applies, and verification stays cheap on every
request. Passwords are chosen by people, so they get a salted, memory-hard
``scrypt`` hash instead.

Comparisons are constant-time (``hmac.compare_digest``), and an unknown key
id or username costs the same work as a known one, so timing tells an
attacker nothing about which ids or usernames exist.

The functions here work inside a session the :class:`~geo_monitor.store.AlertStore`
methods open; they never commit themselves.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_monitor.errors import InvalidInputError, NotFoundError
from geo_monitor.store.index_reads import KeyRecord
from geo_monitor.store.records import coerce_enum
from geo_monitor.store.schema import ApiKeyRow, Role, UserRow

__all__ = [
    "ApiKeyNotFoundError",
    "check_api_key",
    "Principal",
    "Role",
    "create_api_key",
    "create_user",
    "hash_password",
    "list_api_keys",
    "revoke_api_key",
    "verify_api_key",
    "verify_password",
    "verify_user",
]

#: Prefix of every key: lets secret scanners and people recognise a geo-monitor key.
KEY_PREFIX = "gm"
_KEY_PATTERN = re.compile(r"^gm_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
NAME_LENGTH = 200
PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # scrypt hashes anything, but a megabyte "password" is an attack, not a password
#: scrypt cost: 2**14 x 8 x 1 is ~16 MiB and tens of milliseconds per check (OWASP's minimum class).
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
#: Compared against when a key id or username is unknown, so that case costs the same as a known one.
_DUMMY_KEY_HASH = hashlib.sha256(b"no such key").hexdigest()


class ApiKeyNotFoundError(NotFoundError):
    """No API key has the given id."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key or a logged-in user, with the role the web layer checks."""

    kind: str  # "api_key" | "user"
    id: str  # key id or username
    name: str
    role: Role
    provinces: frozenset[str] | None  # partner keys may be limited to provinces; None = all


# --- API keys -------------------------------------------------------------------


def create_api_key(
    session: Session,
    name: str,
    role: Role | str,
    now: datetime,
    *,
    provinces: Any = None,
    expires_at: datetime | date | None = None,
) -> tuple[str, str]:
    """Store a new key and return ``(key_id, key)``; the key is not kept and cannot be shown again."""
    name = _check_name(name)
    role = coerce_enum(Role, role, "role")
    scope = _check_provinces(provinces)
    expiry = _check_expiry(expires_at, now)
    key_id = secrets.token_hex(8)
    while session.get(ApiKeyRow, key_id) is not None:  # 64 random bits: practically never
        key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiKeyRow(
            id=key_id,
            name=name,
            role=role,
            provinces=None if scope is None else sorted(scope),
            secret_hash=_key_hash(key),
            created_at=now,
            expires_at=expiry,
            revoked_at=None,
        )
    )
    return key_id, key


def verify_api_key(session: Session, key: object, now: datetime) -> Principal | None:
    """The principal of ``key``; None when it is malformed, unknown, revoked or expired."""
    return check_api_key(key, lambda key_id: _key_record(session.get(ApiKeyRow, key_id)), now)


def check_api_key(key: object, lookup: Callable[[str], KeyRecord | None], now: datetime) -> Principal | None:
    """:func:`verify_api_key` with the row read by ``lookup(key_id)`` (the store passes a raw DB-API read)."""
    match = _KEY_PATTERN.match(key) if isinstance(key, str) else None
    if match is None:
        return None
    row = lookup(match.group(1))
    expected = row.secret_hash if row is not None else _DUMMY_KEY_HASH
    if not hmac.compare_digest(_key_hash(key), expected) or row is None:  # type: ignore[arg-type]
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    provinces = None if row.provinces is None else frozenset(row.provinces)
    return Principal(kind="api_key", id=match.group(1), name=row.name, role=Role(row.role), provinces=provinces)


def _key_record(row: ApiKeyRow | None) -> KeyRecord | None:
    if row is None:
        return None
    return KeyRecord(row.secret_hash, row.name, row.role.value, row.provinces, row.expires_at, row.revoked_at)


def revoke_api_key(session: Session, key_id: str, now: datetime) -> None:
    """Revoke a key for good (idempotent: revoking twice keeps the first time)."""
    row = session.get(ApiKeyRow, key_id, with_for_update=True) if isinstance(key_id, str) else None
    if row is None:
        raise ApiKeyNotFoundError(f"no API key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now


def list_api_keys(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Every key, oldest first, with whether it works now; never the key or its hash."""
    rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id))
    return [
        {
            "id": row.id,
            "name": row.name,
            "role": row.role.value,
            "provinces": row.provinces,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "revoked_at": row.revoked_at,
            "active": row.revoked_at is None and (row.expires_at is None or row.expires_at > now),
        }
        for row in rows
    ]


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# --- users ----------------------------------------------------------------------


def create_user(session: Session, username: str, password: str, role: Role | str, now: datetime) -> None:
    """Store a new web user with a salted scrypt hash of ``password``."""
    username = _check_username(username)
    role = coerce_enum(Role, role, "role")
    password_hash = hash_password(password)
    if session.get(UserRow, username) is not None:
        raise InvalidInputError(f"user {username!r} already exists")
    session.add(UserRow(username=username, password_hash=password_hash, role=role, created_at=now, disabled_at=None))


def set_password(session: Session, username: str, password: str) -> None:
    """Replace a user's password (a fresh salt and hash); the user must exist."""
    row = session.get(UserRow, _check_username(username))
    if row is None:
        raise InvalidInputError(f"no user {username!r}")
    row.password_hash = hash_password(password)


def verify_user(session: Session, username: object, password: object) -> Principal | None:
    """The principal of a user whose password matches; None otherwise (unknown, wrong or disabled)."""
    row = session.get(UserRow, username.strip().lower()) if isinstance(username, str) else None
    if not isinstance(password, str) or len(password) > PASSWORD_MAX:
        return None
    stored = row.password_hash if row is not None else _dummy_password_hash()
    if not verify_password(password, stored) or row is None or row.disabled_at is not None:
        return None
    return Principal(kind="user", id=row.username, name=row.username, role=row.role, provinces=None)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64): the parameters travel with the hash so they can be raised later."""
    _check_password(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_LEN, maxmem=64 * 2**20)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.cache
def _dummy_password_hash() -> str:
    """Checked against when a username is unknown (made once, on first need: scrypt is slow on purpose)."""
    return hash_password("not-the-password-of-anyone")


# --- validation -------------------------------------------------------------------


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_LENGTH:
        raise InvalidInputError(f"name must be 1..{NAME_LENGTH} characters, saying who holds the key; got {name!r}")
    return name.strip()


def _check_provinces(provinces: object) -> frozenset[str] | None:
    if provinces is None:
        return None
    items = [provinces] if isinstance(provinces, str) else provinces
    try:
        names = frozenset(items)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError(f"provinces must be province names; got {provinces!r}") from None
    if not names:
        raise InvalidInputError("provinces must name at least one province (leave it out for all provinces)")
    for item in names:
        if not isinstance(item, str) or not item.strip() or len(item) > NAME_LENGTH:
            raise InvalidInputError(f"provinces: each must be a name of 1..{NAME_LENGTH} characters; got {item!r}")
    return names


def _check_expiry(expires_at: object, now: datetime) -> datetime | None:
    """An aware datetime, or a date meaning 00:00 UTC of that day; must be in the future."""
    if expires_at is None:
        return None
    if isinstance(expires_at, datetime):
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise InvalidInputError(f"expires_at must have a timezone; got {expires_at!r}")
        moment = expires_at
    elif isinstance(expires_at, date):
        moment = datetime.combine(expires_at, time(0), tzinfo=timezone.utc)
    else:
        raise InvalidInputError(f"expires_at must be a date or datetime; got {expires_at!r}")
    if moment <= now:
        raise InvalidInputError(f"expires_at {moment.isoformat()} is not in the future")
    return moment


def _check_username(username: object) -> str:
    if not isinstance(username, str) or not _USERNAME_PATTERN.match(username.strip().lower()):
        raise InvalidInputError(
            "username must be 1..64 characters: lower-case letters, digits and . _ @ -, starting with a letter or digit"
        )
    return username.strip().lower()


def _check_password(password: object) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInputError(f"password must be {PASSWORD_MIN}..{PASSWORD_MAX} characters")
    return password
