"""One not-found class: the store's lookups raise it, the web layer answers it with 404 in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_monitor.errors import InvalidInputError, NotFoundError
from geo_monitor.store import AlertNotFoundError, AlertStore, ApiKeyNotFoundError
from geo_monitor.store.outbox import SubscriptionNotFoundError
from web import create_app

from alert_samples import AGENT
from api_support import problem, test_settings

NOT_FOUND = [AlertNotFoundError, ApiKeyNotFoundError, SubscriptionNotFoundError]


@pytest.mark.parametrize("error", NOT_FOUND)
def test_every_not_found_error_is_one(error: type[Exception]) -> None:
    # Still bad input and a LookupError, as before, for code that catches those.
    assert issubclass(error, NotFoundError) and issubclass(error, InvalidInputError) and issubclass(error, LookupError)


def test_the_store_raises_them(tmp_path: Path) -> None:
    with AlertStore.from_url(f"sqlite:///{tmp_path / 'a.sqlite'}") as store:
        store.migrate()
        with pytest.raises(NotFoundError, match="no alert"):
            store.change_status("gm-missing", "under_review", AGENT)
        with pytest.raises(NotFoundError, match="no API key"):
            store.revoke_api_key("0123456789abcdef")
        with pytest.raises(NotFoundError, match="no webhook subscription"):
            store.delete_subscription("sub_missing", None)


@pytest.mark.parametrize("error", NOT_FOUND)
def test_the_web_layer_maps_each_to_404(tmp_path: Path, error: type[Exception]) -> None:
    app = create_app(test_settings(tmp_path), store=AlertStore.from_url(f"sqlite:///{tmp_path / 'a.sqlite'}"))

    @app.get("/raise")
    def _raise() -> None:
        raise error("no such thing 'x'")

    body = problem(app.test_client().get("/raise"), 404)
    assert body["detail"] == "no such thing 'x'"
