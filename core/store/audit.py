"""The audit log: who changed what, when, with the state before and after.

Every change made through :class:`core.store.CaseStore` adds its audit row in the same
transaction as the change (:func:`record` only adds to the caller's session), so there is never
a change without its row nor a row for a change that was rolled back. ``who`` is the OS user
(``getpass.getuser()``) unless the store was opened for another user name.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath

import numpy as np
from sqlalchemy.orm import Session

from core.errors import StoreError
from core.jsontypes import JSONDict, JSONValue
from core.store.models import AuditLog, utcnow


def os_user() -> str:
    """The logged-in OS user, or "unknown" where the platform cannot tell."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (some containers)
        return "unknown"


def jsonable(value: object, what: str) -> JSONValue:
    """``value`` as plain JSON types: numpy scalars/arrays, enums, paths, dates and dataclasses
    are converted; NaN becomes None (a value that is not evaluable). Infinity and other objects
    raise StoreError naming ``what``.
    """
    try:
        data: JSONValue = json.loads(json.dumps(_plain(value), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise StoreError(f"Cannot store {what}: {err}. Use numbers, text, lists and dicts.") from err
    return data


def jsonable_object(value: object, what: str) -> JSONDict:
    """:func:`jsonable` for a value stored in a JSON-object column: a mapping or a dataclass."""
    data = jsonable(value, what)
    if not isinstance(data, dict):
        raise StoreError(f"Cannot store {what}: it is {type(value).__name__}, not a mapping of names to values.")
    return data


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return value


def record(
    session: Session,
    who: str,
    action: str,
    entity: str,
    entity_id: int | None,
    case_id: int | None,
    before: object = None,
    after: object = None,
) -> None:
    """Adds one audit row to ``session`` (flushed and committed with the change)."""
    session.add(
        AuditLog(
            at=utcnow(),
            who=who,
            action=action,
            entity=entity,
            entity_id=entity_id,
            case_id=case_id,
            before=None if before is None else jsonable_object(before, "the audit entry"),
            after=None if after is None else jsonable_object(after, "the audit entry"),
        )
    )
