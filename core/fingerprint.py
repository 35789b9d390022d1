"""The one identity of a slide file: sha256 of its size, first MiB and last MiB.

Used by the case store (which slide a case holds; the same file added twice is one slide), the
engine's checkpoints (resume only on the same pixels) and the demo (re-use a stored analysis).
Reads at most 2 MiB whatever the file size, so it is fast on multi-GB slides, and still tells a
replaced or re-exported file from the original; moving or copying the file keeps its identity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from core.errors import SlideError

__all__ = ["SlideFingerprint", "slide_fingerprint"]

_MIB = 1 << 20


@dataclass(frozen=True)
class SlideFingerprint:
    """A slide file's identity: sha256 (hex) of its size, first and last MiB; size in bytes."""

    sha256: str
    size: int

    def to_dict(self) -> dict[str, str | int]:
        """The JSON form, ``{"sha256": ..., "size": ...}``, that checkpoint and cohort keys are made of
        (the keys of earlier runs hash this same form, so they still match)."""
        return {"sha256": self.sha256, "size": self.size}


def slide_fingerprint(path: str | Path) -> SlideFingerprint:
    """The identity of the slide file at ``path``; SlideError when it cannot be read."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            digest = hashlib.sha256(size.to_bytes(8, "little"))
            digest.update(f.read(_MIB))
            if size > _MIB:
                f.seek(max(_MIB, size - _MIB))
                digest.update(f.read(_MIB))
    except OSError as err:
        raise SlideError(path, f"cannot read it to fingerprint it ({err.strerror or err})") from err
    return SlideFingerprint(digest.hexdigest(), size)
