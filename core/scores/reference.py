"""The lab's own reference cohort, built from the cases flagged as reference in the case store.

SPEC: the vendor's reference is proprietary, so the Immunoscore-like percentiles and the T-and-B
cut-offs rank a case against the lab's own cases. A case counts with the densities of its latest
saved scores (the newest version of each accession flagged as reference); a case without saved
scores, or without a CT or IM, adds nothing to the parameters it lacks, so each parameter has its
own n. The case being scored is left out of its own reference (``exclude_accession``).

The store is passed in (anything with ``list_reference_cases`` and ``load_scores``, e.g.
``core.store.CaseStore``: :class:`ReferenceSource`), so scores do not depend on the store package.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from core.scores.case import CaseScores
from core.scores.cohort import COHORT_PARAMETERS, ReferenceCohort

#: Name of the cohort built from the store; the report and app show it with its n and version.
STORE_COHORT_NAME = "Lab reference cases"
STORE_SOURCE = "case store: cases flagged as reference"


class _ReferenceCase(Protocol):
    """What a reference case record offers (``core.store.CaseRecord``)."""

    @property
    def id(self) -> int: ...

    @property
    def accession(self) -> str: ...


class _SavedScores(Protocol):
    """What a saved score record offers (``core.store.ScoreRecord``)."""

    @property
    def scores(self) -> CaseScores: ...

    @property
    def created_at(self) -> datetime: ...


class ReferenceSource(Protocol):
    """The part of a case store the cohort is built from (``core.store.CaseStore``)."""

    def list_reference_cases(self, *, signed_only: bool = ...) -> Iterable[_ReferenceCase]: ...

    def load_scores(self, case_id: int) -> Sequence[_SavedScores]: ...


def reference_values(scores: CaseScores) -> dict[str, float | None]:
    """The six cohort parameters (cells/mm²; None = region missing) of one case's scores."""
    values = scores.densities.parameters()
    return {p: values.get(p) for p in COHORT_PARAMETERS}


def cohort_from_store(
    store: ReferenceSource,
    *,
    signed_only: bool = False,
    exclude_accession: str | None = None,
    name: str = STORE_COHORT_NAME,
) -> ReferenceCohort | None:
    """The reference cohort of the cases flagged as reference, or None when none has saved scores.

    signed_only: only signed cases count. Its date is the day of the newest score it uses; its
    version a hash of its values, so any change of membership or scores shows as a new version.
    """
    rows: list[dict[str, str | float | None]] = []
    newest: datetime | None = None
    for case in store.list_reference_cases(signed_only=signed_only):
        if exclude_accession is not None and case.accession == exclude_accession:
            continue
        scores = store.load_scores(case.id)
        if not scores:
            continue
        latest = scores[-1]
        rows.append({"case_id": case.accession, **reference_values(latest.scores)})
        newest = latest.created_at if newest is None else max(newest, latest.created_at)
    if not rows:
        return None
    date = newest.date().isoformat() if newest is not None else None
    return ReferenceCohort.from_records(rows, name, synthetic=False, source=STORE_SOURCE, date=date)
