"""Vector parts of the report's figures: the overview with its legend and scale bar, and the
percentile scale of the Immunoscore-like result.

The overview's pixels come from :mod:`core.report.overview`; the legend, the colour bar and the
scale bar are drawn as vectors so that their text stays sharp and extractable.
"""

from __future__ import annotations

import math

import numpy as np
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable

from core.density_map import density_colour
from core.report._styles import FONT, FONT_BOLD, INK, fmt_density
from core.report.colours import BRAND, MUTED, REGION_COLOURS, REGION_LABELS, RULE, hex_to_rgb, marker_colour
from core.report.overview import Overview

#: Category bounds of the Immunoscore-like mean percentile (SPEC: IS0..IS4).
IS_BOUNDS = (0.0, 10.0, 25.0, 70.0, 95.0, 100.0)
IS_NAMES = ("IS0", "IS1", "IS2", "IS3", "IS4")


def _scale_bar_um(span_um: float) -> float:
    """A round length (1, 2, 5 x 10^k µm) close to a fifth of ``span_um``."""
    target = span_um / 5.0
    exp = math.floor(math.log10(max(target, 1e-9)))
    best = 10.0**exp
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * 10**exp <= target:
            best = step * 10**exp
    return best


def _length_label(um: float) -> str:
    return f"{um / 1000:g} mm" if um >= 1000 else f"{um:g} µm"


class OverviewFigure(Flowable):
    """The overview picture (left) with its scale bar, and the legend (right)."""

    def __init__(self, overview: Overview, width: float, max_height: float) -> None:
        super().__init__()
        self.overview = overview
        self.legend_w = 52 * mm
        img_w, img_h = overview.image.size
        box_w = width - self.legend_w - 6 * mm
        scale = min(box_w / img_w, max_height / img_h)
        self.img_w, self.img_h = img_w * scale, img_h * scale
        self.width = width
        self.height = max(self.img_h, 62 * mm)

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c = self.canv
        ov = self.overview
        y0 = self.height - self.img_h
        c.drawImage(ImageReader(ov.image), 0, y0, self.img_w, self.img_h)
        c.setStrokeColor(colors.HexColor(RULE))
        c.setLineWidth(0.6)
        c.rect(0, y0, self.img_w, self.img_h, stroke=1, fill=0)
        self._scale_bar(y0)
        self._legend(self.img_w + 6 * mm, self.height)

    def _scale_bar(self, y0: float) -> None:
        c = self.canv
        span_um = self.overview.um_per_px * self.overview.image.size[0]
        bar_um = _scale_bar_um(span_um)
        bar_pt = self.img_w * bar_um / span_um
        x, y = 4 * mm, y0 + 4 * mm
        c.saveState()
        c.setFillColor(colors.Color(1, 1, 1, alpha=0.85))
        c.rect(x - 2 * mm, y - 2 * mm, bar_pt + 4 * mm, 8.5 * mm, stroke=0, fill=1)
        c.restoreState()
        c.setFillColor(INK)
        c.rect(x, y, bar_pt, 1.4 * mm, stroke=0, fill=1)
        c.setFont(FONT, 7)
        c.drawCentredString(x + bar_pt / 2, y + 2.4 * mm, _length_label(bar_um))

    def _legend(self, x: float, top: float) -> None:
        c = self.canv
        y = top - 3 * mm
        c.setFont(FONT_BOLD, 8)
        c.setFillColor(colors.HexColor(BRAND))
        c.drawString(x, y, "Regions")
        y -= 5 * mm
        c.setFont(FONT, 7.6)
        for kind in self.overview.kinds:
            rgb = [v / 255 for v in hex_to_rgb(REGION_COLOURS[kind])]
            c.saveState()
            c.setStrokeColorRGB(*rgb)
            c.setFillColorRGB(*[1 - 0.25 + 0.25 * v for v in rgb])  # the IM tint over white paper
            c.setLineWidth(0.6 if kind == "tissue" else 1.4)
            if kind == "tumour":
                c.setDash(3, 2)
            c.rect(x, y - 0.6 * mm, 6 * mm, 3 * mm, stroke=1, fill=1 if kind == "invasive_margin" else 0)
            c.restoreState()
            if kind == "exclusion":
                c.setLineWidth(0.6)
                for i in range(3):
                    c.line(x + (1 + 2 * i) * mm, y - 0.6 * mm, x + (2.4 + 2 * i) * mm, y + 2.4 * mm)
            c.setFillColor(INK)
            c.drawString(x + 8 * mm, y, REGION_LABELS[kind])
            y -= 5 * mm
        if not self.overview.kinds:
            c.setFillColor(colors.HexColor(MUTED))
            c.drawString(x, y, "No regions")
            y -= 5 * mm
        if self.overview.density_max is not None:
            self._colour_bar(x, y - 3 * mm)
        elif self.overview.density_label:
            c.setFont(FONT, 7.6)
            c.setFillColor(colors.HexColor(MUTED))
            c.drawString(x, y - 3 * mm, f"No {self.overview.density_label} cells: no density overlay.")

    def _colour_bar(self, x: float, y: float) -> None:
        c = self.canv
        ov = self.overview
        c.setFont(FONT_BOLD, 8)
        c.setFillColor(colors.HexColor(BRAND))
        c.drawString(x, y, f"{ov.density_label} cell density")
        c.setFont(FONT, 7)
        c.setFillColor(colors.HexColor(MUTED))
        c.drawString(x, y - 3.6 * mm, "cells/mm² (overlay opacity)")
        bar_w, bar_h, steps = 44 * mm, 3.2 * mm, 48
        yb = y - 9 * mm
        t = (np.arange(steps, dtype=np.float32) + 0.5) / steps
        rgb, alpha = density_colour(t, marker_colour(ov.density_label))
        over_white = 255 - alpha[:, None] / 255 * (255 - rgb)  # what the overlay looks like on paper
        for i in range(steps):
            c.setFillColorRGB(*(float(v) / 255 for v in over_white[i]))
            c.rect(x + bar_w * i / steps, yb, bar_w / steps + 0.2, bar_h, stroke=0, fill=1)
        c.setStrokeColor(colors.HexColor(RULE))
        c.setLineWidth(0.5)
        c.rect(x, yb, bar_w, bar_h, stroke=1, fill=0)
        c.setFillColor(INK)
        c.setFont(FONT, 7)
        c.drawString(x, yb - 3.2 * mm, "0")
        c.drawRightString(x + bar_w, yb - 3.2 * mm, f"{fmt_density(ov.density_max)} and above")


class PercentileScale(Flowable):
    """A 0-100 scale with the IS category bands and a marker at the mean percentile."""

    def __init__(self, mean: float, width: float) -> None:
        super().__init__()
        self.mean = mean
        self.width = width
        self.height = 11 * mm

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c = self.canv
        w = self.width
        y, h = 4.2 * mm, 3.2 * mm
        shades = ("#dfe5ee", "#c9d3e1", "#afbdd1", "#8ea2bf", "#6d86ad")
        for i, name in enumerate(IS_NAMES):
            x0, x1 = w * IS_BOUNDS[i] / 100, w * IS_BOUNDS[i + 1] / 100
            c.setFillColor(colors.HexColor(shades[i]))
            c.rect(x0, y, x1 - x0, h, stroke=0, fill=1)
            c.setFillColor(INK)
            c.setFont(FONT, 5.8)
            c.drawCentredString((x0 + x1) / 2, y + 0.9 * mm, name)
            if i:
                c.setFillColor(colors.HexColor(MUTED))
                c.drawCentredString(x0, y - 2.6 * mm, f"{IS_BOUNDS[i]:g}")
        xm = w * min(max(self.mean, 0.0), 100.0) / 100
        c.setFillColor(INK)
        p = c.beginPath()
        p.moveTo(xm, y + h + 0.2 * mm)
        p.lineTo(xm - 1.4 * mm, y + h + 2.4 * mm)
        p.lineTo(xm + 1.4 * mm, y + h + 2.4 * mm)
        p.close()
        c.drawPath(p, stroke=0, fill=1)
