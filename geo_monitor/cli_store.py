"""Commands that manage the alert store: ``db upgrade``, ``apikeys create|list|revoke``, ``users create``,
``webhooks deliver``.

Registered on ``geo_monitor.cli.main`` on import. Each command opens the store
the settings name and brings its schema up to date first (idempotent), so a
fresh install needs no separate step before its first key.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from geo_monitor.cli import _echo_json, _settings, main
from geo_monitor.errors import InvalidInputError
from geo_monitor.validation import parse_date

ROLES = ["partner", "analyst", "admin", "agent"]


def _open_store() -> Any:
    from geo_monitor.store import AlertStore

    store = AlertStore.from_settings(_settings())
    store.migrate()
    return store


# --- db ----------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The alert store's database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (Alembic upgrade head) to the store the settings name."""
    from geo_monitor.store import AlertStore

    settings = _settings()
    with AlertStore.from_settings(settings) as store:
        before = store.schema_revision()
        store.migrate()
        after = store.schema_revision()
    where = settings.public_view()["database_url"]
    click.echo(f"{where}: {'already at' if before == after else f'upgraded from {before} to'} revision {after}")


# --- API keys ------------------------------------------------------------------------


@main.group()
def apikeys() -> None:
    """API keys for partners and scripts (sent as the X-API-Key header)."""


@apikeys.command("create")
@click.option("--name", required=True, help="Who holds the key, e.g. 'Fiscalía Napo'.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option("--province", "provinces", multiple=True, metavar="NAME",
              help="Limit the key to alerts in this province (repeat for several). [default: all provinces]")
@click.option("--expires", metavar="YYYY-MM-DD", help="The key stops working at 00:00 UTC that day. [default: never]")
@click.option("--json", "as_json", is_flag=True, help="Print id and key as JSON.")
def apikeys_create(name: str, role: str, provinces: tuple[str, ...], expires: str | None, as_json: bool) -> None:
    """Create a key and print it ONCE: only its hash is stored, it cannot be shown again."""
    expires_at = parse_date(expires, "--expires") if expires else None
    with _open_store() as store:
        key_id, key = store.create_api_key(name, role, provinces=provinces or None, expires_at=expires_at)
    if as_json:
        _echo_json({"id": key_id, "key": key})
    else:
        click.echo(f"id   {key_id}")
        click.echo(f"key  {key}")
    click.echo("Store the key now: it is shown only this once.", err=True)


@apikeys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def apikeys_list(as_json: bool) -> None:
    """List keys (id, name, role, provinces, expiry, state); never the keys themselves."""
    with _open_store() as store:
        keys = store.list_api_keys()
    if as_json:
        _echo_json(keys)
        return
    for key in keys:
        state = "active" if key["active"] else ("revoked" if key["revoked_at"] else "expired")
        scope = ",".join(key["provinces"]) if key["provinces"] else "all provinces"
        expiry = key["expires_at"].date().isoformat() if key["expires_at"] else "never"
        click.echo(f"{key['id']}  {state:<7}  {key['role']:<8}  {scope}  expires {expiry}  {key['name']}")


@apikeys.command("revoke")
@click.argument("key_id")
def apikeys_revoke(key_id: str) -> None:
    """Revoke a key for good: requests with it get 401 from now on."""
    with _open_store() as store:
        store.revoke_api_key(key_id)
    click.echo(f"revoked {key_id}")


# --- users ---------------------------------------------------------------------------


@main.group()
def users() -> None:
    """Web users (log in to the map and the API with a session)."""


@users.command("create")
@click.option("--username", required=True, help="Login name (lower-case letters, digits, . _ @ -).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user; the password comes from a prompt (or --password-stdin), never from an option."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise InvalidInputError("no terminal to ask for the password: pass it with --password-stdin")
    with _open_store() as store:
        store.create_user(username, password, role)
    click.echo(f"created user {username.strip().lower()} ({role})")


# --- webhooks --------------------------------------------------------------------------


@main.group()
def webhooks() -> None:
    """Signed webhook deliveries to partners' subscriptions."""


@webhooks.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due now and exit, instead of running until stopped.")
def webhooks_deliver(once: bool) -> None:
    """Send due webhook deliveries, retrying failures with backoff (several may run at once)."""
    from geo_monitor.webhooks import Dispatcher

    settings = _settings()
    with _open_store() as store:
        dispatcher = Dispatcher.from_settings(store, settings)
        if once:
            counts = dispatcher.run_once()
            click.echo(" ".join(f"{key}={value}" for key, value in counts.items()))
            return
        dispatcher.run_forever(settings.webhook_poll_s)
