"""Exit 0 when a screenshot shows something: many distinct colours and real contrast.

Used by installer/bundle_test.sh on the bundled app's ``--demo --screenshot`` picture; a blank or
single-colour window (Qt failed to draw, no platform plugin) has a handful of colours and almost
no spread of grey values.
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

MIN_COLOURS = 500
MIN_STD = 20.0


def main(path: str) -> int:
    img = np.asarray(Image.open(path).convert("RGB"))
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    std = float(img.astype(np.float32).std())
    ok = colours >= MIN_COLOURS and std >= MIN_STD
    print(f"{path}: {img.shape[1]}x{img.shape[0]} px, {colours} colours, grey std {std:.1f} -> "
          f"{'not blank' if ok else 'BLANK'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
