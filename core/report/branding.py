"""The HoechstScore mark, drawn in code so that no binary artwork has to be trusted or licensed.

A rounded navy square holds a Hoechst-blue nucleus and three small cells in the CD3, CD8 and
CD20 colours. ``python -m core.report.branding`` rewrites ``resources/branding/logo.png``; the
report uses that file, or draws the mark in memory when the resources are not installed.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from core.errors import ResourceError
from core.report.colours import BRAND, MARKER_COLOURS, hex_to_rgb
from core.resources import logo_png_path


def draw_logo(size: int = 256) -> Image.Image:
    """The mark as an RGBA image ``size`` pixels square (drawn 4x larger, then reduced)."""
    s = 4 * size
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 5, fill=(*hex_to_rgb(BRAND), 255))
    u = s / 100.0
    # The nucleus: Hoechst blue, with two darker chromatin spots.
    d.ellipse((18 * u, 22 * u, 70 * u, 70 * u), fill=(92, 140, 255, 255))
    d.ellipse((30 * u, 34 * u, 42 * u, 44 * u), fill=(52, 92, 210, 255))
    d.ellipse((48 * u, 48 * u, 58 * u, 57 * u), fill=(52, 92, 210, 255))
    # Three lymphocytes in the marker colours.
    for (cx, cy), marker in zip(((76, 30), (80, 60), (58, 80)), ("CD3+", "CD8+", "CD20+"), strict=True):
        r = 9
        d.ellipse(((cx - r) * u, (cy - r) * u, (cx + r) * u, (cy + r) * u),
                  fill=(*hex_to_rgb(MARKER_COLOURS[marker]), 255), outline=(255, 255, 255, 255),
                  width=round(2 * u))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def logo_png(path: Path | None = None) -> bytes:
    """PNG bytes of the logo at ``path``, else of the shipped logo, else of the drawn mark."""
    if path is not None:
        return Path(path).read_bytes()
    try:
        shipped = logo_png_path()
    except ResourceError:  # the shipped files are not installed: the drawn mark is the same logo
        shipped = None
    if shipped is not None and shipped.is_file():
        return shipped.read_bytes()
    buf = io.BytesIO()
    draw_logo().save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    """Rewrite ``resources/branding/logo.png`` (in a source checkout with an editable install)."""
    logo = logo_png_path()
    logo.parent.mkdir(parents=True, exist_ok=True)
    draw_logo().save(logo, format="PNG")
    print(logo)


if __name__ == "__main__":
    main()
