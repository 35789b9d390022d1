"""``python -m core report CASE --out report.pdf``: print the PDF report of a stored case.

CASE is the case's id or its accession (newest version). The report is built from what the store
holds (:func:`core.report.from_store.report_data_from_store`), so printing the same case twice
gives the same bytes; the printed report is recorded in the store unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any

from core.cli._args import database_url, output_file
from core.cli.demo_case import add_report_options, report_settings
from core.errors import StoreError
from core.report import ReportSettings, write_report


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
    add_report_options(p, ReportSettings())
    p.set_defaults(func=run)


def find_case(store: Any, key: str) -> Any:
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
        path = write_report(args.out, data, report_settings(args))
        pdf = path.read_bytes()
        sha = hashlib.sha256(pdf).hexdigest()
        if not args.no_record:
            reports = store.list_reports(case.id)
            if not reports or reports[-1].sha256 != sha:
                store.save_report(case.id, pdf=pdf, path=path)
    print(f"Wrote {path} (case {data.case_id}, sha256 {sha[:16]})")
    return 0
