"""The one type of JSON data: what ``json.loads`` returns and ``json.dumps`` accepts.

Stored results, summaries, model cards and GeoJSON are JSON. They are typed as :data:`JSONValue`
(one recursive alias) rather than ``dict[str, Any]``, so the type checker follows them:

- a ``to_dict`` returns :data:`JSONDict` (mypy checks every value is JSON);
- a ``from_dict`` takes :data:`JSONMapping` (read-only and covariant, so a ``dict[str, float]`` or
  a ``JSONDict`` both fit) and converts each field with the readers below, which do what the
  built-in conversion did (``float(v)``, ``int(v)``, ``str(v)``) and raise ``TypeError`` naming
  the value when a field holds the wrong kind of JSON (a list where a number belongs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]
JSONDict: TypeAlias = dict[str, JSONValue]
JSONList: TypeAlias = list[JSONValue]
# Read-only views for arguments: Mapping/Sequence are covariant, so dict[str, float] fits too.
JSONMapping: TypeAlias = Mapping[str, JSONValue]
JSONSequence: TypeAlias = Sequence[JSONValue]

__all__ = [
    "JSONDict", "JSONList", "JSONMapping", "JSONScalar", "JSONSequence", "JSONValue",
    "as_float", "as_int", "as_list", "as_mapping", "as_str", "opt_float", "opt_int", "opt_str",
]


def _wrong(value: object, wanted: str) -> TypeError:
    return TypeError(f"Expected {wanted} in the JSON data, found {type(value).__name__} {value!r:.80}.")


def as_float(value: object) -> float:
    """``float(value)`` for a JSON number, bool or numeric string; ``TypeError`` for null, list, object."""
    if isinstance(value, int | float | str):
        return float(value)
    raise _wrong(value, "a number")


def as_int(value: object) -> int:
    """``int(value)`` for a JSON number, bool or integer string; ``TypeError`` for null, list, object."""
    if isinstance(value, int | float | str):
        return int(value)
    raise _wrong(value, "an integer")


def as_str(value: object) -> str:
    """``str(value)`` for a JSON scalar (null gives "None", as ``str`` does); ``TypeError`` for list, object."""
    if value is None or isinstance(value, str | int | float):
        return str(value)
    raise _wrong(value, "a string")


def opt_float(value: object) -> float | None:
    """None stays None; anything else as :func:`as_float`."""
    return None if value is None else as_float(value)


def opt_int(value: object) -> int | None:
    """None stays None; anything else as :func:`as_int`."""
    return None if value is None else as_int(value)


def opt_str(value: object) -> str | None:
    """None stays None; anything else as :func:`as_str`."""
    return None if value is None else as_str(value)


def as_mapping(value: object) -> JSONMapping:
    """A JSON object as a mapping; a missing or empty value (None, "", [], {}) as an empty one.

    The empty case is the ``d.get(key) or {}`` idiom of the readers, kept as it was."""
    if isinstance(value, Mapping):
        return value
    if not value:
        return {}
    raise _wrong(value, "an object")


def as_list(value: object) -> JSONSequence:
    """A JSON array (or a tuple) as a sequence; a missing or empty value as an empty one (``or ()``)."""
    if isinstance(value, list | tuple):
        return value
    if not value:
        return ()
    raise _wrong(value, "a list")
