"""The one identity of a slide file: sha256 of its size, first MiB and last MiB.

Used by the case store (which slide a case holds; the same file added twice is one slide), the
engine's checkpoints (resume only on the same pixels) and the demo (re-use a stored analysis).
Reads at most 2 MiB whatever the file size, so it is fast on multi-GB slides, and still tells a
replaced or re-exported file from the original; moving or copying the file keeps its identity.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import SlideError

_MIB = 1 << 20


def slide_fingerprint(path: str | Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of the slide file at ``path``; SlideError when it cannot be read."""
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
    return digest.hexdigest(), size
