"""schemathesis against /api/v1/openapi.json: generated requests never get a 5xx or a response the schema denies.

Runs on both back-ends through the ``api`` fixture, with an agent key (it may
read and PATCH). Positive-data acceptance is not checked: the schema
describes ``bbox``/``datetime`` as strings, and most generated strings are
rightly refused with a 400 problem, which is itself checked against the
schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from alert_samples import make_alert
from api_support import Api, make_api, test_settings
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from stac_fixtures import FixtureCatalog, static_catalog  # noqa: F401  (pytest fixture)
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from geo_monitor.store import AlertStore

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation: enough to hit every parameter's edge cases, bounded for a 2-core CI.
EXAMPLES = 40


@pytest.fixture
def api(alert_store: AlertStore, tmp_path: Path, static_catalog: FixtureCatalog) -> Api:
    """The app on a fresh store with an imagery catalog to serve (without one, imagery is rightly a 503)."""
    return make_api(alert_store, test_settings(tmp_path, stac_url=str(static_catalog.catalog_json)))


@pytest.mark.slow
def test_no_5xx_and_responses_match_the_schema(api: Api) -> None:
    """Every operation of the document, EXAMPLES generated requests each (hypothesis, driven here:
    schemathesis' own pytest plugin does not run under this pytest version)."""
    api.store.upsert_alerts([make_alert(f"gm-{i:016x}", at=(-77.9 + i * 0.01, -1.0)) for i in range(3)],
                            "pipeline:mining-change@1")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    headers = {"X-API-Key": api.keys["agent"]}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
