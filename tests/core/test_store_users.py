"""Lab users and signatures checked against the store (migration 0002): argon2 hashes, the meaning
of a signature, patient fields, pixel-size provenance."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import StoreError
from core.store import CaseStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cases.db"


@pytest.fixture
def store(db: Path):  # noqa: ANN201
    with CaseStore.open(f"sqlite:///{db}", user="os-user") as opened:
        yield opened


def test_secret_is_stored_as_argon2_hash_only(store: CaseStore, db: Path) -> None:
    store.add_user("jdoe", "Dr Jane Doe", "2468")
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE username = 'jdoe'").fetchone()
        dump = "\n".join(conn.iterdump())
    assert stored.startswith("$argon2id$") and "2468" not in stored
    assert "2468" not in dump.replace(stored, "")  # not in the audit log either
    assert [u.display_name for u in store.list_users()] == ["Dr Jane Doe"]


def test_signing_checks_the_secret_and_keeps_the_meaning(store: CaseStore) -> None:
    store.add_user("jdoe", "Dr Jane Doe", "2468")
    case = store.create_case("S-1")
    with pytest.raises(StoreError, match="wrong"):
        store.sign_as(case.id, "jdoe", "1357", "I approve")
    with pytest.raises(StoreError, match="wrong"):
        store.sign_as(case.id, "nobody", "2468", "I approve")
    assert not store.get_case(case.id).is_signed
    signed = store.sign_as(case.id, "jdoe", "2468", "I approve this report as final.")
    assert signed.is_signed and signed.signed_by == "Dr Jane Doe"
    assert signed.signature_meaning == "I approve this report as final."
    entries = [e for e in store.audit_entries(case.id) if e.action in ("sign", "signature")]
    assert {e.who for e in entries} == {"jdoe"}
    assert entries[-1].after["meaning"] == "I approve this report as final."


def test_users_rules(store: CaseStore) -> None:
    with pytest.raises(StoreError, match="too short"):
        store.add_user("a", "A", "12")
    store.add_user("a", "A", "1234")
    with pytest.raises(StoreError, match="exists already"):
        store.add_user("a", "B", "5678")
    assert store.check_user("a", "1234").display_name == "A"


def test_patient_fields_are_edited_audited_and_carried_to_new_versions(store: CaseStore) -> None:
    store.add_user("jdoe", "Dr Jane Doe", "2468")
    case = store.create_case("S-2")
    store.update_case(case.id, patient_id="P-7", patient_name="Doe, John", patient_birth_date="1950-01-31")
    store.sign_as(case.id, "jdoe", "2468", "Final")
    v2 = store.new_version(case.id)
    assert (v2.patient_id, v2.patient_name, v2.patient_birth_date) == ("P-7", "Doe, John", "1950-01-31")
    assert v2.signature_meaning is None
    updates = [e for e in store.audit_entries(case.id) if e.action == "update"]
    assert updates[-1].after["patient_name"] == "Doe, John"


def test_pixel_size_source_is_kept(store: CaseStore, tmp_path: Path) -> None:
    f = tmp_path / "s.tif"
    f.write_bytes(b"not really a slide")
    case = store.create_case("S-3")
    slide = store.add_slide(case.id, f, mpp=(0.3, 0.3), mpp_source="entered by the user")
    assert store.list_slides(case.id)[0].mpp_source == "entered by the user" == slide.mpp_source


def test_hidden_cases_leave_the_list_but_stay_in_the_store(store: CaseStore) -> None:
    store.add_user("jdoe", "Dr Jane Doe", "2468")
    case = store.create_case("H-1")
    store.sign_as(case.id, "jdoe", "2468", "Final")
    v2 = store.new_version(case.id)
    store.create_case("H-2")
    store.set_hidden(v2.id, True)  # signed v1 included: the list is not case content
    assert [c.accession for c in store.find_cases(include_hidden=False)] == ["H-2"]
    assert {c.accession for c in store.find_cases()} == {"H-1", "H-2"}
    assert store.get_case(case.id).is_hidden and store.get_case(case.id).is_signed
    assert [e.action for e in store.audit_entries(case.id)][-1] == "hide"
    store.set_hidden(case.id, False)
    assert len(store.find_cases(include_hidden=False)) == 2
