"""Merge a finished cohort into the case store, from one process, after the workers are done.

Workers never write into the store: many processes writing one SQLite file at once would
serialise on its lock, and a cluster node may not reach the database at all. The driver reads
each finished case folder and records it with the store's public API, as the app would: the case
(accession = the manifest's case_id), its slide, a finished analysis with its cells and summary,
its regions (CT and IM derived as for scoring) and its scores; ``reference`` flags it as a
member of the lab's reference cohort. Idempotent: a case already holding an analysis with this
case key is not recorded again (its reference flag is still set); a signed case is never changed.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.cohort.case import case_regions, read_done
from core.cohort.manifest import CohortCase
from core.errors import StoreError
from core.jsontypes import JSONDict, as_float, as_int, as_list, as_str
from core.progress import Progress

if TYPE_CHECKING:
    from core.store import CaseRecord, CaseStore

EXTRAS = "store_extras.json"


@dataclass(frozen=True)
class MergeResult:
    """Accessions recorded now, already there (same key), flagged as reference, and left out (why)."""

    recorded: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    reference: tuple[str, ...] = ()
    left_out: dict[str, str] = field(default_factory=dict)


def _case(store: CaseStore, accession: str) -> CaseRecord:
    try:
        return store.get_case_by_accession(accession)
    except StoreError:
        return store.create_case(accession, notes="Scored by `python -m core cohort`.")


def _cells(folder: Path, classes: Sequence[str]) -> pd.DataFrame:
    cells = pd.read_csv(folder / "cells.csv")
    cells["class_id"] = cells["class_name"].map({n: i for i, n in enumerate(classes)}).astype(int)
    return cells


def _record(store: CaseStore, case: CaseRecord, cohort_case: CohortCase, folder: Path, done: JSONDict) -> None:
    """Slide, analysis (cells, summary), regions and scores of one finished case folder.

    The analysis is stored as the app and the demo store theirs (:func:`core.case.recording`)."""
    from core.case import recording
    from core.models.card import load_card
    from core.regions import RegionKind

    card = load_card(Path(as_str(done["model_dir"])))
    given_mpp = as_list(done["mpp"])
    mpp = (as_float(given_mpp[0]), as_float(given_mpp[1]))
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    extras_path = folder / EXTRAS
    if extras_path.is_file():
        summary.update(json.loads(extras_path.read_text(encoding="utf-8")))
    slide = store.add_slide(case.id, cohort_case.slide, mpp=mpp, channels=[str(summary.get("channel", ""))])
    parameters = {"engine": done["params"], "cohort_key": done["key"]}
    with recording(store, case.id, slide.id, model_name=card.name, model_sha256=card.weights_sha256,
                   parameters=parameters, device=str(done.get("device")),
                   precision=str(done.get("precision"))) as run:
        run.save_cells(_cells(folder, card.classes), card.classes)
        run.finish_with(summary)
    scores_path = folder / "scores.json"
    # None when the case has no regions file (case_regions)
    size_px = [as_int(v) for v in as_list(done["size_px"])]
    regions = case_regions(cohort_case, folder, mpp, size_px) if scores_path.is_file() else None
    if regions is not None:
        given = {r.kind for r in regions}
        if RegionKind.TUMOUR in given and not given & {RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN}:
            regions.replace_ct_im_by_derived(as_float(done["im_half_width_um"]), author="HoechstScore cohort")
        store.save_regions(case.id, list(regions))
        scores = json.loads(scores_path.read_text(encoding="utf-8"))
        store.save_scores(case.id, scores, provenance=scores.get("provenance", {}), analysis_id=run.analysis_id)


def merge_into_store(store: CaseStore, cases: Sequence[CohortCase], out_dir: str | Path, keys: dict[str, str],
                     reference: bool = False) -> Generator[Progress, None, MergeResult]:
    """Record every finished case of ``cases`` (folders under ``out_dir``) in ``store``.

    ``reference``: flag every recorded case as reference (the manifest's ``reference`` column
    flags single cases). Cases not done with their current key are left out, with the reason.
    """
    from core.case import finished_analyses

    recorded, unchanged, flagged = [], [], []
    left_out: dict[str, str] = {}
    for i, cohort_case in enumerate(cases, 1):
        yield Progress(i - 1, len(cases), f"Recording {cohort_case.case_id}")
        folder = Path(out_dir) / cohort_case.case_id
        done = read_done(folder)
        if done is None or done.get("key") != keys[cohort_case.case_id]:
            left_out[cohort_case.case_id] = "not finished"
            continue
        case = _case(store, cohort_case.case_id)
        known = any((a.parameters or {}).get("cohort_key") == done["key"] for a in finished_analyses(store, case.id))
        if known:
            unchanged.append(case.accession)
        elif case.is_signed:
            left_out[cohort_case.case_id] = (f"case {case.accession} is signed; make a new version of it "
                                             "in the app to record a new analysis")
            continue
        else:
            _record(store, case, cohort_case, folder, done)
            recorded.append(case.accession)
        if reference or cohort_case.reference:
            store.set_reference(case.id, True)
            flagged.append(case.accession)
    yield Progress(len(cases), len(cases), "Recorded in the case store")
    return MergeResult(tuple(recorded), tuple(unchanged), tuple(flagged), left_out)
