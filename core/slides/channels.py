"""Channel roles and their aliases: how a slide's channel named "DAPI" answers the role "hoechst".

Scanners name channels after the dye or filter ("Hoechst 33342", "DAPI", "AF488", "Cy3-T2"), not
after the marker, and every lab names them a little differently. Code asks for a **role**
(``hoechst``, ``cd20``, ``cd8``, ``cd3``); :func:`find_channel` maps it to a channel index through
the alias table, which a lab can override per role (``open_slide(..., channel_aliases=...)``).

Matching is case-insensitive and, in order of preference:

1. if the wanted string is a role: a channel name equals one of the role's aliases (case, spaces,
   ``-`` and ``_`` ignored), then a channel name starts with an alias and a separator (Zen writes
   ``"Cy3-T2"``). Roles come first so that an overridden role wins over a same-named channel;
2. otherwise a channel name equal to the wanted string (so any channel can be asked for by name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

__all__ = ["CHANNEL_ALIASES", "merge_aliases", "find_channel", "placeholder_names"]

CHANNEL_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "hoechst": ("Hoechst", "H3342", "Hoechst 33342", "DAPI"),
        "cd20": ("FITC", "Fluorescein", "AF488"),
        "cd8": ("Cy3",),
        "cd3": ("AF750", "AF751", "Alexa Fluor 750"),
    }
)
"""Default role -> aliases (case-insensitive). Roles are lower-case."""

_SEPARATORS = re.compile(r"[\s\-_]+")
_PLACEHOLDER = re.compile(r"^Channel \d+$")


def placeholder_names(n: int) -> list[str]:
    """Names for channels a file does not name: ``"Channel 1"`` ... (1-based, as QuPath does)."""
    return [f"Channel {i + 1}" for i in range(n)]


def merge_aliases(overrides: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """The default table with the roles in ``overrides`` replaced (roles compared lower-case)."""
    table = {role: tuple(aliases) for role, aliases in CHANNEL_ALIASES.items()}
    for role, aliases in (overrides or {}).items():
        if isinstance(aliases, str):
            aliases = (aliases,)
        table[role.lower()] = tuple(aliases)
    return table


def _norm(text: str) -> str:
    return _SEPARATORS.sub("", text).casefold()


def find_channel(
    names: Sequence[str], wanted: str, aliases: Mapping[str, Sequence[str]]
) -> int | None:
    """Index of the channel matching ``wanted`` (a channel name or a role), or None.

    A single unnamed channel (a placeholder name such as ``"Channel 1"``) answers every role:
    a one-channel slide whose file names nothing is taken to be the nuclear stain it was opened for.
    """
    role_aliases = aliases.get(wanted.casefold(), ())
    normed = [_norm(n) for n in names]
    for alias in role_aliases:  # whole-name match, in alias order of preference
        if _norm(alias) in normed:
            return normed.index(_norm(alias))
    for alias in role_aliases:  # "Cy3-T2", "DAPI (ex 353)"
        prefix = re.compile(rf"^{re.escape(alias.casefold())}[\s\-_:(/]", re.IGNORECASE)
        for i, name in enumerate(names):
            if prefix.match(name):
                return i
    folded = [n.casefold() for n in names]
    if wanted.casefold() in folded:
        return folded.index(wanted.casefold())
    if len(names) == 1 and _PLACEHOLDER.match(names[0]):
        return 0
    return None
