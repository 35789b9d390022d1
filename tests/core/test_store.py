"""CaseStore API on SQLite and PostgreSQL: cases, versions, sign-off, slides, analyses, regions,
scores, reports and the audit row each change writes."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC
from pathlib import Path

import pytest
from store_fixtures import make_cells, new_analysis

from core.errors import StoreError
from core.store import CaseStatus, CaseStore, RegionData

pytest_plugins = ["store_fixtures"]  # store, store_url, slide_file, pg_server

SQUARE = "POLYGON ((0 0, 1000 0, 1000 1000, 0 1000, 0 0))"
BAND = "POLYGON ((-500 -500, 1500 -500, 1500 1500, -500 1500, -500 -500), (0 0, 1000 0, 1000 1000, 0 1000, 0 0))"


def test_create_get_find_cases(store: CaseStore) -> None:
    a = store.create_case("S24-0001", patient_id="P-1", notes="Colon, right")
    store.create_case("S24-0002", patient_id="P-2", notes="rectum 50% tumour")
    assert a.version == 1 and a.status == CaseStatus.DRAFT and not a.is_signed
    assert a.created_at.tzinfo is not None and a.created_at.utcoffset().total_seconds() == 0
    assert store.get_case(a.id) == a
    assert store.get_case_by_accession("S24-0001") == a
    assert [c.accession for c in store.find_cases("s24")] == ["S24-0001", "S24-0002"]
    assert [c.accession for c in store.find_cases("colon")] == ["S24-0001"]
    assert [c.accession for c in store.find_cases("p-2")] == ["S24-0002"]
    assert [c.accession for c in store.find_cases("50%")] == ["S24-0002"]  # % is literal, not a wildcard
    assert store.find_cases("_") == []
    with pytest.raises(StoreError, match="already exists"):
        store.create_case("S24-0001")
    with pytest.raises(StoreError, match="No case with id 999"):
        store.get_case(999)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.notes = "x"  # type: ignore[misc]


def test_every_change_writes_an_audit_row(store: CaseStore, slide_file: Path) -> None:
    case = store.create_case("S24-0003")
    store.update_case(case.id, notes="first look")
    store.update_case(case.id, notes="first look")  # no change, no row
    store.set_reference(case.id, True)
    slide = store.add_slide(case.id, slide_file, mpp=(0.227, 0.227), channels=["Hoechst"])
    store.add_slide(case.id, slide_file, mpp=(0.227, 0.227), channels=["Hoechst"])  # already there
    entries = store.audit_entries(case.id)
    assert [(e.action, e.entity) for e in entries] == [
        ("create", "case"), ("update", "case"), ("set_reference", "case"), ("add", "slide"),
    ]
    update = entries[1]
    assert update.who == "tester" and update.at.tzinfo is not None
    assert update.before["notes"] == "" and update.after["notes"] == "first look"
    assert entries[3].entity_id == slide.id and entries[3].after["fingerprint"] == slide.fingerprint
    # A refused change leaves neither the change nor an audit row.
    with pytest.raises(StoreError):
        store.save_regions(case.id, [{"id": "r1", "kind": "tumour", "geometry_wkt": "POLYGON ((0 0, 1 1"}])
    assert len(store.audit_entries(case.id)) == 4 and store.load_regions(case.id) == []


def test_default_audit_user_is_the_os_user(store_url: str) -> None:
    import getpass

    with CaseStore.open(store_url) as store:
        store.create_case("S24-0004")
        assert store.audit_entries()[-1].who == getpass.getuser()


def test_slides_and_analyses(store: CaseStore, slide_file: Path) -> None:
    case = store.create_case("S24-0005")
    slide = store.add_slide(case.id, slide_file, mpp=(0.227, 0.228), channels=["Hoechst", "FITC"], is_synthetic=True)
    assert slide.mpp == (0.227, 0.228) and slide.channels == ("Hoechst", "FITC") and slide.is_synthetic
    assert slide.size_bytes == slide_file.stat().st_size and len(slide.fingerprint) == 64
    assert store.list_slides(case.id) == [slide]
    with pytest.raises(StoreError, match="invalid"):
        store.add_slide(case.id, slide_file, mpp=(0.0, 0.2))
    run = store.start_analysis(
        case.id, slide.id, model_name="unet", model_sha256="cd" * 32, parameters={"tile": 256, "overlap": 0.5},
        device="cuda:0", precision="fp16",
    )
    assert run.status == "running" and run.parameters == {"tile": 256, "overlap": 0.5}
    with pytest.raises(StoreError, match="still running"):
        store.sign_case(case.id, "Dr A")
    done = store.finish_analysis(run.id, summary={"n_cells": 0, "seconds": 1.5})
    assert done.status == "finished" and done.finished_at is not None and done.summary["seconds"] == 1.5
    with pytest.raises(StoreError, match="final"):
        store.finish_analysis(run.id, status="failed")
    with pytest.raises(StoreError, match="final"):
        store.save_cells(run.id, make_cells(3))
    with pytest.raises(StoreError, match="Unknown analysis status"):
        store.finish_analysis(run.id, status="done")
    assert store.list_analyses(case.id) == [done] and store.get_analysis(run.id) == done


def test_regions_save_update_delete(store: CaseStore) -> None:
    case = store.create_case("S24-0006")
    saved = store.save_regions(
        case.id,
        [
            RegionData(id="t", kind="tumour", geometry_wkt=SQUARE, name="Tumour", author="Dr A"),
            {"id": "im", "kind": "invasive_margin", "geometry_wkt": BAND, "extra": {"isLocked": True}},
        ],
    )
    assert [(r.id, r.kind, r.geometry_wkt) for r in saved] == [("t", "tumour", SQUARE), ("im", "invasive_margin", BAND)]
    assert saved[1].extra == {"isLocked": True}
    # Objects with attributes work too (e.g. core.regions.Region: enum kind, shapely geometry).
    import shapely

    class Kind:
        value = "exclusion"

    class Obj:
        id, kind, name, author = "ex", Kind(), "Fold", "Dr B"
        geometry = shapely.from_wkt("POLYGON ((10 10, 20.123456789012 10, 20 20, 10 10))")

    moved = SQUARE.replace("1000", "900")
    result = store.save_regions(case.id, [RegionData(id="t", kind="tumour", geometry_wkt=moved, name="Tumour"), Obj()])
    assert [r.id for r in result] == ["t", "ex"]
    assert result[1].kind == "exclusion" and "20.123456789012" in result[1].geometry_wkt
    assert result[0].updated_at >= saved[0].updated_at and result[0].created_at == saved[0].created_at
    actions = [(e.action, e.entity, (e.after or e.before)["id"]) for e in store.audit_entries(case.id)[1:]]
    assert actions == [
        ("create", "region", "t"), ("create", "region", "im"),
        ("delete", "region", "im"), ("update", "region", "t"), ("create", "region", "ex"),
    ]
    assert store.load_regions(case.id) == result
    with pytest.raises(StoreError, match="Polygon"):
        store.save_regions(case.id, [{"id": "p", "kind": "tumour", "geometry_wkt": "POINT (1 2)"}])
    with pytest.raises(StoreError, match="twice"):
        store.save_regions(case.id, [RegionData("a", "tumour", SQUARE), RegionData("a", "tumour", SQUARE)])


def test_scores_and_reports(store: CaseStore, tmp_path: Path) -> None:
    import numpy as np

    case = store.create_case("S24-0007")
    score = store.save_scores(
        case.id,
        {"CD3_CT": np.float64(812.5), "CD8_IM": float("nan"), "category": "High", "n": np.int64(3)},
        provenance={"model_sha256": "ab" * 32, "reference_cases": 120},
    )
    assert score.result == {"CD3_CT": 812.5, "CD8_IM": None, "category": "High", "n": 3}
    assert store.load_scores(case.id) == [score]
    with pytest.raises(StoreError, match="Cannot store"):
        store.save_scores(case.id, {"x": math.inf}, provenance={})
    pdf = b"%PDF-1.7 test report"
    in_db = store.save_report(case.id, pdf=pdf)
    file = tmp_path / "report.pdf"
    file.write_bytes(pdf + b" v2")
    on_disk = store.save_report(case.id, path=file)
    assert in_db.has_pdf and not on_disk.has_pdf and on_disk.path == str(file)
    assert store.list_reports(case.id) == [in_db, on_disk]
    assert store.load_report_pdf(in_db.id) == pdf and store.load_report_pdf(on_disk.id) == pdf + b" v2"
    file.write_bytes(b"tampered")
    with pytest.raises(StoreError, match="altered"):
        store.load_report_pdf(on_disk.id)


def test_signed_case_is_immutable(store: CaseStore, slide_file: Path) -> None:
    case_id, run_id = new_analysis(store, "S24-0008", slide_file)
    store.save_cells(run_id, make_cells(10))
    store.finish_analysis(run_id)
    store.save_regions(case_id, [RegionData("t", "tumour", SQUARE)])
    store.save_scores(case_id, {"CD3_CT": 1.0}, provenance={})
    signed = store.sign_case(case_id, "Dr Signer")
    assert signed.is_signed and signed.signed_by == "Dr Signer" and signed.signed_at is not None
    slide_id = store.list_slides(case_id)[0].id
    edits = [
        lambda: store.update_case(case_id, notes="changed"),
        lambda: store.add_slide(case_id, slide_file, mpp=(0.5, 0.5)),
        lambda: store.start_analysis(case_id, slide_id, model_name="m", model_sha256="0" * 64, parameters={},
                                     device="cpu", precision="fp32"),
        lambda: store.save_regions(case_id, []),
        lambda: store.save_scores(case_id, {"CD3_CT": 2.0}, provenance={}),
        lambda: store.sign_case(case_id, "Dr Other"),
    ]
    for edit in edits:
        with pytest.raises(StoreError, match="signed by Dr Signer .* cannot be changed.*new version"):
            edit()
    assert store.get_case(case_id) == signed
    # Not case content: reference-cohort membership and printed reports.
    assert store.set_reference(case_id, True).is_reference
    assert store.save_report(case_id, pdf=b"%PDF signed").case_id == case_id


def test_new_version_copies_and_keeps_old_readable(store: CaseStore, slide_file: Path) -> None:
    case_id, run_id = new_analysis(store, "S24-0009", slide_file)
    cells = make_cells(1000)
    store.save_cells(run_id, cells)
    store.finish_analysis(run_id)
    store.save_regions(case_id, [RegionData("t", "tumour", SQUARE, name="Tumour")])
    store.save_scores(case_id, {"CD3_CT": 1.0}, provenance={"analysis": run_id}, analysis_id=run_id)
    with pytest.raises(StoreError, match="still a draft"):
        store.new_version(case_id)
    store.sign_case(case_id, "Dr A")
    v2 = store.new_version(case_id)
    assert (v2.version, v2.status, v2.parent_case_id, v2.accession) == (2, "draft", case_id, "S24-0009")
    assert store.list_slides(v2.id) == store.list_slides(case_id)
    assert store.list_analyses(v2.id) == store.list_analyses(case_id)
    assert [(r.id, r.geometry_wkt) for r in store.load_regions(v2.id)] == [("t", SQUARE)]
    assert [s.result for s in store.load_scores(v2.id)] == [{"CD3_CT": 1.0}]
    with pytest.raises(StoreError, match="newer version"):
        store.new_version(case_id)
    # Amend the draft; the signed version is untouched and still readable.
    store.save_regions(v2.id, [RegionData("t", "tumour", BAND, name="Tumour (revised)")])
    store.save_scores(v2.id, {"CD3_CT": 2.0}, provenance={})
    assert store.load_regions(case_id)[0].geometry_wkt == SQUARE
    assert [s.result for s in store.load_scores(case_id)] == [{"CD3_CT": 1.0}]
    assert len(store.load_cells(run_id)) == 1000
    assert store.get_case_by_accession("S24-0009").id == v2.id
    assert store.get_case_by_accession("S24-0009", version=1).id == case_id
    assert [c.version for c in store.case_versions(v2.id)] == [1, 2]
    assert [c.id for c in store.find_cases("S24-0009")] == [v2.id]
    assert [c.id for c in store.find_cases("S24-0009", latest_only=False)] == [case_id, v2.id]
    assert store.audit_entries(v2.id)[0].after["copied_from_case_id"] == case_id
    assert store.audit_entries(case_id)[-1].action == "superseded"


def test_reference_cohort(store: CaseStore) -> None:
    a = store.create_case("REF-1", is_reference=True)
    b = store.create_case("REF-2")
    store.create_case("OTHER")
    store.set_reference(b.id, True)
    assert [c.accession for c in store.list_reference_cases()] == ["REF-1", "REF-2"]
    assert store.list_reference_cases(signed_only=True) == []
    store.sign_case(a.id, "Dr A")
    v2 = store.new_version(a.id)
    assert [c.id for c in store.list_reference_cases()] == [v2.id, b.id]
    assert [c.id for c in store.list_reference_cases(signed_only=True)] == [a.id]
    store.set_reference(b.id, False)
    assert [c.accession for c in store.list_reference_cases()] == ["REF-1"]


def test_records_outlive_the_store(store_url: str) -> None:
    with CaseStore.open(store_url, user="tester") as store:
        case = store.create_case("S24-0010")
        entries = store.audit_entries(case.id)
    assert case.accession == "S24-0010" and entries[0].after["accession"] == "S24-0010"
    assert case.created_at.tzinfo == UTC


def test_one_store_shared_by_threads(store: CaseStore) -> None:
    import threading

    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            for i in range(10):
                case = store.create_case(f"T{tag}-{i}")
                store.update_case(case.id, notes=f"thread {tag}")
        except BaseException as err:  # reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.find_cases("T")) == 40 and len(store.audit_entries()) == 80


def test_one_slide_fingerprint_for_store_and_checkpoints(tmp_path: Path) -> None:
    """The store and the engine's checkpoints identify a slide by the same content fingerprint."""
    from core.engine._checkpoint import checkpoint_key
    from core.fingerprint import SlideFingerprint, slide_fingerprint

    a = tmp_path / "a.tif"
    a.write_bytes(bytes(range(256)) * 20_000)  # 5 MB: first and last MiB both count
    moved = tmp_path / "moved.tif"
    moved.write_bytes(a.read_bytes())
    identity = slide_fingerprint(a)
    assert isinstance(identity, SlideFingerprint) and len(identity.sha256) == 64
    assert identity == slide_fingerprint(moved) and identity.size == 5_120_000
    # The checkpoint key's form is the one earlier runs hashed, so their checkpoints still resume.
    assert slide_fingerprint(moved).to_dict() == {"sha256": identity.sha256, "size": identity.size}
    assert checkpoint_key({"slide": slide_fingerprint(moved).to_dict()}) == checkpoint_key({"slide": identity.to_dict()})
    tail = bytearray(a.read_bytes())
    tail[-1] ^= 0xFF
    moved.write_bytes(bytes(tail))
    assert slide_fingerprint(moved).sha256 != identity.sha256


def test_stored_scores_come_back_typed(store: CaseStore) -> None:
    """The store keeps JSON; ScoreRecord.scores gives core's typed results back, equal to what was saved."""
    import pandas as pd
    from shapely.geometry import box

    from core.regions import Region, RegionSet
    from core.scores import COHORT_PARAMETERS, ReferenceCohort, score_case

    cohort = ReferenceCohort("flat", pd.DataFrame({p: [1.0, 2.0, 3.0] for p in COHORT_PARAMETERS}))
    cells = pd.DataFrame({"x_um": [10.0, 120.0], "y_um": [10.0, 10.0], "class_name": ["CD3", "CD20"]})
    regions = RegionSet([Region(kind="tumour_centre", geometry=box(0, 0, 100, 100)),
                         Region(kind="invasive_margin", geometry=box(100, 0, 200, 100))])
    s = score_case(cells, regions, cohort)
    case = store.create_case("TYPED-1")
    store.save_scores(case.id, s.to_dict(), provenance=s.provenance.to_dict())
    back = store.load_scores(case.id)[-1].scores
    assert back.immunoscore_like.label == s.immunoscore_like.label
    assert back.t_and_b.category == s.t_and_b.category and back.t_and_b.score == s.t_and_b.score
    assert back.provenance.cohort_version == cohort.version
    assert back.densities.density("CD20+", "IM") == s.densities.density("CD20+", "IM")
