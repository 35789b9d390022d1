"""``python -m core report CASE --out report.pdf``: print the PDF report of a stored case.

CASE is the case's id or its accession (newest version). The report is built from what the store
holds (:func:`core.report.from_store.report_data_from_store`) and says when it was printed (now,
as the app's reports do); ``--printed-at`` pins that time, so printing the same case twice with the
same value gives the same bytes. The printed report is recorded in the store unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.cli.args import database_url, output_file
from core.cli.demo_case import add_report_options, report_settings
from core.errors import StoreError
from core.report import ReportSettings, write_report

if TYPE_CHECKING:  # the store is opened when the command runs
    from core.store import CaseRecord, CaseStore


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write the PDF report of a stored case",
        description="Render the PDF report (one or two A4 pages) of a case in the case database.",
    )
    p.add_argument("case", metavar="CASE", help="case id (a number) or accession")
    p.add_argument("--out", type=output_file, required=True, help="PDF file to write")
    p.add_argument("--db", metavar="URL", type=database_url, default=os.environ.get("HOECHSTSCORE_DB_URL") or None,
                   help="case database URL, any SQLAlchemy URL (default: $HOECHSTSCORE_DB_URL, else cases.db "
                   "in the user's data folder)")
    p.add_argument("--no-record", action="store_true", help="do not record the printed report in the store")
    p.add_argument("--printed-at", type=printed_at, default=None, metavar="TIME",
                   help="the print time shown on the report, ISO 8601 (e.g. 2026-03-01T14:05+01:00; no zone = UTC); "
                   "default: now. Give it to reproduce a report byte for byte")
    add_report_options(p, ReportSettings())
    p.set_defaults(func=run)


def printed_at(text: str) -> datetime:
    """An ISO 8601 time for --printed-at; without a zone it is UTC (the report prints UTC)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time; write e.g. 2026-03-01T14:05 or 2026-03-01T14:05+01:00") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def find_case(store: CaseStore, key: str) -> CaseRecord:
    """The case with id ``key`` (digits) or accession ``key``; StoreError naming both tries."""
    if key.isdigit():
        try:
            return store.get_case(int(key))
        except StoreError:
            pass
    try:
        return store.get_case_by_accession(key)
    except StoreError:
        raise StoreError(f"No case with id or accession {key!r} in the case database. "
                         "Give the number shown in the app's case list, or the accession.") from None


def run(args: argparse.Namespace) -> int:
    from core.report.from_store import report_data_from_store
    from core.store import CaseStore

    with CaseStore.open(args.db) as store:
        case = find_case(store, args.case)
        data = report_data_from_store(store, case.id)
        when = args.printed_at or datetime.now(UTC).replace(microsecond=0)
        path = write_report(args.out, data, replace(report_settings(args), printed_at=when))
        pdf = path.read_bytes()
        sha = hashlib.sha256(pdf).hexdigest()
        if not args.no_record:
            reports = store.list_reports(case.id)
            if not reports or reports[-1].sha256 != sha:
                store.save_report(case.id, pdf=pdf, path=path)
    print(f"Wrote {path} (case {data.case_id}, printed {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC, sha256 {sha[:16]})")
    return 0
