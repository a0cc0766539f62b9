"""case embeddings for similar-case search; an index on when cases were resolved

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_embeddings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_embeddings_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_embeddings")),
        sa.UniqueConstraint(
            "case_id", "model_version", name=op.f("uq_case_embeddings_case_id")
        ),
    )
    with op.batch_alter_table("case_embeddings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_embeddings_model_version"),
            ["model_version"],
            unique=False,
        )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_resolved_at", ["resolved_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_resolved_at")
    with op.batch_alter_table("case_embeddings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_embeddings_model_version"))
    op.drop_table("case_embeddings")
