"""The deployment's secret key: from settings, else generated once and kept in ``data_dir``.

The key signs web sessions and paging cursors. There is no hard-coded
default (a known key would let anyone forge sessions); when the operator
sets none, a random key is created on first start and stored with owner-only
permissions, so that every web worker on the host and every restart share it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from geo_monitor.errors import ConfigError
from geo_monitor.settings import Settings

#: File name of the generated key inside ``data_dir``.
SECRET_KEY_FILE = "secret_key"
#: Bytes of randomness in a generated key (256 bits).
KEY_BYTES = 32
#: Shortest key accepted from settings: shorter keys are guessable.
MIN_KEY_LENGTH = 16


def resolve_secret_key(settings: Settings) -> bytes:
    """The secret key settings name, else the one stored in ``data_dir`` (created if missing)."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(f"secret_key must be at least {MIN_KEY_LENGTH} characters")
        return key.encode()
    return _stored_key(settings.resolved_data_dir / SECRET_KEY_FILE)


def _stored_key(path: Path) -> bytes:
    """Read the key at ``path``, creating it atomically when absent (workers may start together)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_urlsafe(KEY_BYTES).encode())
        try:
            # A hard link appears complete or not at all, and fails if another worker won the race.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"{path} holds no usable secret key; delete it to have a new one generated")
    return key
