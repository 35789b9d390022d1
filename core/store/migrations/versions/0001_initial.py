"""Initial schema: cases, slides, analyses, cells, regions, scores, reports, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Self-contained on purpose (plain ``sa`` types, no import of ``core.store.models``): a migration
describes the schema as it was at this revision, whatever the models say later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def _index(table: str, column: str) -> None:
    op.create_index(f"ix_{table}_{column}", table, [column], unique=False)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("accession", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("is_reference", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parent_case_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("signed_by", sa.String(length=128), nullable=True),
        sa.Column("signed_at", _utc(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'signed')", name="ck_cases_status"),
        _fk("cases", "parent_case_id", "cases"),
        _pk("cases", "id"),
        sa.UniqueConstraint("accession", "version", name="uq_cases_accession_version"),
    )
    _index("cases", "accession")
    _index("cases", "parent_case_id")
    _index("cases", "patient_id")

    op.create_table(
        "slides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mpp_x", sa.Float(), nullable=True),
        sa.Column("mpp_y", sa.Float(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("is_synthetic", sa.Boolean(), nullable=False),
        sa.Column("added_at", _utc(), nullable=False),
        _pk("slides", "id"),
    )
    _index("slides", "fingerprint")

    op.create_table(
        "case_slides",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("slide_id", sa.Integer(), nullable=False),
        _fk("case_slides", "case_id", "cases"),
        _fk("case_slides", "slide_id", "slides"),
        _pk("case_slides", "case_id", "slide_id"),
    )
    _index("case_slides", "slide_id")

    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("slide_id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("n_cells", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed', 'cancelled')", name="ck_analyses_status"
        ),
        _fk("analyses", "case_id", "cases"),
        _fk("analyses", "slide_id", "slides"),
        _pk("analyses", "id"),
    )
    _index("analyses", "case_id")
    _index("analyses", "slide_id")

    op.create_table(
        "case_analyses",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        _fk("case_analyses", "analysis_id", "analyses"),
        _fk("case_analyses", "case_id", "cases"),
        _pk("case_analyses", "case_id", "analysis_id"),
    )
    _index("case_analyses", "analysis_id")

    op.create_table(
        "cell_chunks",
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("n_cells", sa.Integer(), nullable=False),
        sa.Column("crc32", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _fk("cell_chunks", "analysis_id", "analyses"),
        _pk("cell_chunks", "analysis_id", "chunk_index"),
    )

    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("slide_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("geometry_wkt", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        _fk("regions", "case_id", "cases"),
        _fk("regions", "slide_id", "slides"),
        _pk("regions", "id"),
        sa.UniqueConstraint("case_id", "uid", name="uq_regions_case_id_uid"),
    )
    _index("regions", "case_id")

    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _fk("scores", "analysis_id", "analyses"),
        _fk("scores", "case_id", "cases"),
        _pk("scores", "id"),
    )
    _index("scores", "case_id")

    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _fk("reports", "case_id", "cases"),
        _pk("reports", "id"),
    )
    _index("reports", "case_id")

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        _fk("audit_log", "case_id", "cases"),
        _pk("audit_log", "id"),
    )
    _index("audit_log", "case_id")


def downgrade() -> None:
    for table in (
        "audit_log", "reports", "scores", "regions", "cell_chunks",
        "case_analyses", "analyses", "case_slides", "slides", "cases",
    ):
        op.drop_table(table)  # their indexes go with them
