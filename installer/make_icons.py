"""Write the app icons in ``resources/icons`` from the HoechstScore mark (core.report.branding).

``python installer/make_icons.py`` rewrites them: a 256 px PNG (Linux .desktop entry, Qt), an .ico
(Windows launchers) and an .icns (macOS app). Drawn in code like the logo, so no artwork to license.
"""

from __future__ import annotations

from core.report.branding import draw_logo
from core.resources import resource_path

#: resources/icons of the source checkout (the editable install maps the package to it).
ICONS = resource_path("icons")


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    big = draw_logo(512)
    draw_logo(256).save(ICONS / "hoechstscore.png", format="PNG")
    big.save(ICONS / "hoechstscore.ico", format="ICO", sizes=[(16, 16), (32, 32), (48, 48), (256, 256)])
    big.save(ICONS / "hoechstscore.icns", format="ICNS")
    for f in sorted(ICONS.iterdir()):
        print(f, f.stat().st_size)


if __name__ == "__main__":
    main()
