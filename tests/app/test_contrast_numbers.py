"""Brightness & contrast by numbers: min, max and gamma typed per channel, and the channel's colour,
applied to the view live; gamma bends the window the way QuPath's does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QColor

from app.viewer.display import ChannelDisplay, DisplaySettings, compose_rgb32


def _type(qtbot, box, text: str) -> None:  # noqa: ANN001
    box.selectAll()
    qtbot.keyClicks(box, text)
    box.interpretText()  # what Return or leaving the field does (offscreen, the box has no focus)


def test_typed_min_max_gamma_and_colour_reach_the_view(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "BC-1")
    window.viewer.contrast_dialog()
    dlg = window.viewer.contrast
    dlg.channel.setCurrentIndex(1)  # FITC
    _type(qtbot, dlg.low, "100")
    _type(qtbot, dlg.high, "5000")
    _type(qtbot, dlg.gamma, "2")
    dlg.set_colour(QColor(255, 0, 255))
    ch = window.view.display.channels[1]
    assert (ch.low, ch.high, ch.gamma, ch.colour) == (100, 5000, 2.0, (255, 0, 255))
    assert dlg.band.getRegion() == (100, 5000)
    dlg.close()


def test_gamma_brightens_the_middle_of_the_window() -> None:
    data = np.array([[[0, 500, 1000]]], dtype=np.uint16)
    linear = DisplaySettings((ChannelDisplay("Hoechst", (255, 255, 255), 0, 1000),))
    bent = linear.with_channel(0, gamma=2.0)
    mid_linear = int(compose_rgb32(data, linear)[0, 1]) & 0xFF
    mid_bent = int(compose_rgb32(data, bent)[0, 1]) & 0xFF
    assert mid_linear == 127 and mid_bent == 180  # 255 * 0.5 ** (1/2)
    assert (compose_rgb32(data, bent)[0, [0, 2]] == compose_rgb32(data, linear)[0, [0, 2]]).all()
