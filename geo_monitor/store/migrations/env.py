"""Alembic environment of the alert store: always run through ``geo_monitor.store.migrate``.

That module hands over an open connection (in a write transaction) through
``config.attributes["connection"]``; there is no alembic.ini and no URL here,
so migrations always run against the store the settings or the caller name.
"""

from __future__ import annotations

from alembic import context

from geo_monitor.store.migrate import object_filter
from geo_monitor.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode there.
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=object_filter(connection.dialect.name),
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
