"""Lab users and signing with a password or PIN checked against the store.

Why argon2 (argon2-cffi): the winner of the Password Hashing Competition, memory-hard so a stolen
database is slow to attack even for short PINs, and the library keeps the salt, the parameters and
the hash in one string (``$argon2id$v=19$m=...``) that :func:`check` can re-hash when the defaults
grow. The secret itself is never stored or logged; the audit row says who signed and what it meant.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import StoreError
from core.store import audit
from core.store._cases import case_record, load_case, sign_case
from core.store.models import Case, User, utcnow
from core.store.records import CaseRecord, UserRecord

_HASHER = PasswordHasher()
#: Shortest secret accepted: a 4-digit PIN is the least a lab would use on a shared workstation.
MIN_SECRET = 4
#: What a signature means when the signer is not asked another question (printed on the report).
DEFAULT_MEANING = ("I have reviewed the regions, the cells and the scores of this case and I approve "
                   "this report as its final result.")


def user_record(u: User) -> UserRecord:
    return UserRecord(id=u.id, username=u.username, display_name=u.display_name, is_active=u.is_active,
                      created_at=u.created_at)


def add_user(session: Session, who: str, username: str, display_name: str, secret: str) -> UserRecord:
    username, display_name = username.strip(), display_name.strip()
    if not username or not display_name:
        raise StoreError("A lab user needs a login name and the full name printed on reports.")
    if len(secret) < MIN_SECRET:
        raise StoreError(f"The password or PIN of {username} is too short: use at least {MIN_SECRET} characters.")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise StoreError(f"A lab user {username!r} exists already; choose another login name.")
    user = User(username=username, display_name=display_name, password_hash=_HASHER.hash(secret),
                is_active=True, created_at=utcnow())
    session.add(user)
    session.flush()
    audit.record(session, who, "add", "user", user.id, None, None,
                 {"username": username, "display_name": display_name})
    return user_record(user)


def list_users(session: Session) -> list[UserRecord]:
    return [user_record(u) for u in session.scalars(select(User).where(User.is_active.is_(True)).order_by(User.username))]


def check(session: Session, username: str, secret: str) -> User:
    """The active user ``username`` if ``secret`` is theirs; StoreError otherwise (same words for an
    unknown user and a wrong secret, so the message does not tell which login names exist)."""
    user = session.scalar(select(User).where(User.username == username.strip(), User.is_active.is_(True)))
    wrong = StoreError(f"The login name or the password/PIN is wrong for {username!r}. Try again.")
    if user is None:
        _HASHER.hash(secret)  # about the same time as a real check
        raise wrong
    try:
        _HASHER.verify(user.password_hash, secret)
    except (VerificationError, InvalidHashError):
        raise wrong from None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(secret)
    return user


def sign_as(session: Session, case_id: int, username: str, secret: str, meaning: str) -> CaseRecord:
    """Sign ``case_id`` as the lab user ``username`` after checking their secret; the audit row's
    ``who`` is the login name, the case's ``signed_by`` their full name."""
    user = check(session, username, secret)
    if not meaning.strip():
        raise StoreError("A signature needs its meaning (what the signer approves).")
    sign_case(session, user.username, case_id, user.display_name)
    case: Case = load_case(session, case_id)
    case.signature_meaning = meaning.strip()
    audit.record(session, user.username, "signature", "case", case_id, case_id, None,
                 {"signed_by": user.display_name, "username": user.username, "meaning": case.signature_meaning})
    return case_record(case)
