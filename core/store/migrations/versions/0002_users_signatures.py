"""Lab users who sign, the meaning of a signature, patient fields, where a pixel size came from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

- ``users``: named lab users with an argon2 hash of their password or PIN; signing checks it.
- ``cases.signature_meaning``: the statement the signer agreed to, printed with the signature.
- ``cases.patient_name``, ``cases.patient_birth_date``: a second and third identifier on the report.
- ``cases.is_hidden``: a case taken off the case list (never deleted: the audit trail stays whole).
- ``slides.mpp_source``: "file", or how the user gave the pixel size of an uncalibrated slide.

Self-contained (plain ``sa`` types), like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("patient_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("patient_birth_date", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("signature_meaning", sa.Text(), nullable=True))
        batch.add_column(sa.Column("is_hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("slides") as batch:
        batch.add_column(sa.Column("mpp_source", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slides") as batch:
        batch.drop_column("mpp_source")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("is_hidden")
        batch.drop_column("signature_meaning")
        batch.drop_column("patient_birth_date")
        batch.drop_column("patient_name")
    op.drop_table("users")
