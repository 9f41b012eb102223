"""API keys and users in the store (both back-ends), and their commands: hashes only, revocation, expiry, scope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from geo_monitor.errors import InvalidInputError
from geo_monitor.store import AlertStore, ApiKeyNotFoundError, Principal, Role

from conftest import cli

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    """A clock tests can move forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[AlertStore]:
    """A migrated store on the current back-end whose clock the test controls."""
    with AlertStore.from_url(store_url, clock=clock) as s:
        s.migrate()
        yield s


def _table_text(store: AlertStore, table: str) -> str:
    """Every value of every row of ``table`` as one string, to search for leaked secrets."""
    with store.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table}")).all()
    return json.dumps([[str(v) for v in row] for row in rows])


# --- API keys -------------------------------------------------------------------


def test_a_key_verifies_as_its_principal_and_only_its_hash_is_stored(store: AlertStore) -> None:
    key_id, key = store.create_api_key("Fiscalía Napo", "partner", provinces=["Napo", "Orellana"])
    assert key.startswith(f"gm_{key_id}_") and len(key) > 60
    principal = store.verify_api_key(key)
    assert principal == Principal(kind="api_key", id=key_id, name="Fiscalía Napo", role=Role.PARTNER,
                                  provinces=frozenset({"Napo", "Orellana"}))
    stored = _table_text(store, "api_keys")
    assert key not in stored and key.rsplit("_", 1)[-1] not in stored  # neither the key nor its secret part
    [listed] = store.list_api_keys()
    assert listed["id"] == key_id and listed["active"] is True and listed["provinces"] == ["Napo", "Orellana"]
    assert not any(key in str(v) for v in listed.values()) and "secret_hash" not in listed


def test_keys_differ_and_do_not_verify_each_other(store: AlertStore) -> None:
    (id_a, key_a), (id_b, key_b) = store.create_api_key("a", "analyst"), store.create_api_key("b", "admin")
    assert id_a != id_b and key_a != key_b
    assert store.verify_api_key(key_a).role is Role.ANALYST  # type: ignore[union-attr]
    assert store.verify_api_key(key_b).role is Role.ADMIN  # type: ignore[union-attr]
    forged = f"gm_{id_a}_" + key_b[len(f"gm_{id_b}_"):]  # a's id with b's secret
    assert store.verify_api_key(forged) is None


@pytest.mark.parametrize(
    "bad",
    ["", "gm_", "not a key", "gm_0123456789abcdef_short", "gm_zzzzzzzzzzzzzzzz_" + "a" * 43,
     "gm_0123456789abcdef_" + "a" * 43, "x" * 100_000, None, 12],
)
def test_malformed_or_unknown_keys_verify_as_nobody(store: AlertStore, bad: object) -> None:
    store.create_api_key("someone", "partner")
    assert store.verify_api_key(bad) is None  # type: ignore[arg-type]


def test_a_revoked_key_stops_working_at_once(store: AlertStore) -> None:
    key_id, key = store.create_api_key("ONG Amazonía", "partner")
    store.revoke_api_key(key_id)
    assert store.verify_api_key(key) is None
    store.revoke_api_key(key_id)  # idempotent
    [listed] = store.list_api_keys()
    assert listed["active"] is False and listed["revoked_at"] == NOW
    with pytest.raises(ApiKeyNotFoundError, match="no API key"):
        store.revoke_api_key("0000000000000000")


def test_a_key_expires_at_its_time(store: AlertStore, clock: Clock) -> None:
    _, by_date = store.create_api_key("until June 3", "partner", expires_at=date(2025, 6, 3))
    _, by_time = store.create_api_key("one hour", "agent", expires_at=NOW + timedelta(hours=1))
    clock.now = NOW + timedelta(minutes=59)
    assert store.verify_api_key(by_date) is not None and store.verify_api_key(by_time) is not None
    clock.now = NOW + timedelta(hours=1)
    assert store.verify_api_key(by_time) is None and store.verify_api_key(by_date) is not None
    clock.now = datetime(2025, 6, 3, tzinfo=timezone.utc)
    assert store.verify_api_key(by_date) is None
    assert [k["active"] for k in store.list_api_keys()] == [False, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "role": "partner"}, "name"),
        ({"name": "x" * 201, "role": "partner"}, "name"),
        ({"name": "x", "role": "superuser"}, "role must be one of"),
        ({"name": "x", "role": "partner", "provinces": []}, "at least one province"),
        ({"name": "x", "role": "partner", "provinces": [""]}, "provinces"),
        ({"name": "x", "role": "partner", "provinces": 7}, "provinces"),
        ({"name": "x", "role": "partner", "expires_at": date(2025, 6, 1)}, "not in the future"),
        ({"name": "x", "role": "partner", "expires_at": datetime(2026, 1, 1)}, "timezone"),
        ({"name": "x", "role": "partner", "expires_at": "2026-01-01"}, "date or datetime"),
    ],
)
def test_bad_key_requests_are_refused(store: AlertStore, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.create_api_key(**kwargs)
    assert store.list_api_keys() == []


# --- users ----------------------------------------------------------------------


def test_a_user_logs_in_with_the_right_password_only(store: AlertStore) -> None:
    store.create_user("Agent.Tena", "río punino 2024", "agent")
    assert store.verify_user("agent.tena", "río punino 2024") == Principal(
        kind="user", id="agent.tena", name="agent.tena", role=Role.AGENT, provinces=None)
    assert store.verify_user("AGENT.TENA ", "río punino 2024") is not None  # usernames are case-insensitive
    assert store.verify_user("agent.tena", "río punino 2025") is None
    assert store.verify_user("nobody", "río punino 2024") is None
    assert store.verify_user("agent.tena", "x" * 5000) is None
    stored = _table_text(store, "users")
    assert "río punino" not in stored and stored.count("scrypt$") == 1


def test_same_password_two_users_two_different_hashes(store: AlertStore) -> None:
    store.create_user("a", "correct horse battery", "analyst")
    store.create_user("b", "correct horse battery", "admin")
    with store.engine.connect() as conn:
        hashes = conn.execute(text("SELECT password_hash FROM users")).scalars().all()
    assert len(set(hashes)) == 2  # salted


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("", "long enough pw", "agent", "username"),
        ("has space", "long enough pw", "agent", "username"),
        ("a" * 65, "long enough pw", "agent", "username"),
        ("ok", "short", "agent", "password must be"),
        ("ok", "x" * 1025, "agent", "password must be"),
        ("ok", "long enough pw", "root", "role must be one of"),
    ],
)
def test_bad_users_are_refused(store: AlertStore, username: str, password: str, role: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.create_user(username, password, role)


def test_a_username_is_taken_once(store: AlertStore) -> None:
    store.create_user("analyst1", "long enough pw", "analyst")
    with pytest.raises(InvalidInputError, match="already exists"):
        store.create_user("Analyst1", "another long one", "admin")


# --- commands ---------------------------------------------------------------------


def test_apikeys_and_users_commands(store_url: str, tmp_path: Path) -> None:
    env = {"GEO_MONITOR_DATABASE_URL": store_url, "GEO_MONITOR_DATA_DIR": str(tmp_path)}
    made = cli("apikeys", "create", "--name", "ARCOM", "--role", "partner", "--province", "Napo",
               "--province", "Zamora Chinchipe", "--expires", "2999-01-01", "--json", env=env)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert "only this once" in made.stderr

    with AlertStore.from_url(store_url) as store:
        principal = store.verify_api_key(created["key"])
        assert principal is not None and principal.provinces == frozenset({"Napo", "Zamora Chinchipe"})

    listed = cli("apikeys", "list", env=env)
    assert listed.returncode == 0 and created["id"] in listed.stdout and "active" in listed.stdout
    assert created["key"] not in listed.stdout

    revoked = cli("apikeys", "revoke", created["id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    with AlertStore.from_url(store_url) as store:
        assert store.verify_api_key(created["key"]) is None

    again = cli("apikeys", "revoke", "0000000000000000", env=env)
    assert again.returncode == 2 and again.stderr.startswith("error: no API key")
    bad_role = cli("apikeys", "create", "--name", "x", "--role", "root", env=env)
    assert bad_role.returncode == 2 and "root" in bad_role.stderr
    bad_date = cli("apikeys", "create", "--name", "x", "--role", "partner", "--expires", "soon", env=env)
    assert bad_date.returncode == 2 and "--expires" in bad_date.stderr

    user = _cli_input(["users", "create", "--username", "ana", "--role", "analyst", "--password-stdin"],
                      "a long passphrase\n", env)
    assert user.returncode == 0, user.stderr
    with AlertStore.from_url(store_url) as store:
        assert store.verify_user("ana", "a long passphrase") is not None
    no_tty = _cli_input(["users", "create", "--username", "bob", "--role", "agent"], "", env)
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr


def _cli_input(args: list[str], stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``geo-monitor`` with text on its standard input (``cli`` gives none)."""
    return subprocess.run([sys.executable, "-m", "geo_monitor.cli", *args], input=stdin, capture_output=True,
                          text=True, env={**os.environ, "GEO_MONITOR_LOG_FORMAT": "text", **env}, timeout=120)
