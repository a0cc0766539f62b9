"""model registry, champion terms and shadow predictions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("training_data", sa.JSON(), nullable=True),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("trained_by", sa.String(length=200), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_by", sa.String(length=200), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_model_versions")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index("ix_model_versions_status", ["status"], unique=False)

    op.create_table(
        "champion_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_champion_terms_version_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_champion_terms")),
    )
    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=True),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("champion_version", sa.String(length=200), nullable=False),
        sa.Column("champion_escalation", sa.Float(), nullable=True),
        sa.Column("champion_category", sa.String(length=200), nullable=True),
        sa.Column("challenger_version", sa.String(length=200), nullable=False),
        sa.Column("challenger_escalation", sa.Float(), nullable=True),
        sa.Column("challenger_category", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_shadow_predictions_case_id_cases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_predictions")),
    )
    with op.batch_alter_table("shadow_predictions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shadow_predictions_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_shadow_predictions_challenger_version"),
            ["challenger_version"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("shadow_predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shadow_predictions_challenger_version"))
        batch_op.drop_index(batch_op.f("ix_shadow_predictions_case_id"))

    op.drop_table("shadow_predictions")
    op.drop_table("champion_terms")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_model_versions_status")

    op.drop_table("model_versions")
