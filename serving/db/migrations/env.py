"""Alembic environment: migrations run on the connection the caller passes in."""

from alembic import context

from serving.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `triage db upgrade` (or serving.db.engine.upgrade), "
        "which passes the database connection in"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
