"""How a slide's channels are shown: a colour, a contrast window and on/off per channel.

Fluorescence slides are 16-bit and dark; a channel is mapped linearly from its contrast window
(``low``..``high`` in raw intensity units) to 0..1, multiplied by its colour and added to the other
visible channels (additive, like QuPath's fluorescence display). The window starts from
percentiles of the overview, so a fresh slide is readable without touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: Display colour (RGB) per channel role; unknown channels cycle through FALLBACK_COLOURS.
ROLE_COLOURS: dict[str, tuple[int, int, int]] = {
    "hoechst": (70, 130, 255),   # blue
    "cd20": (40, 230, 60),       # FITC / fluorescein: green
    "cd8": (255, 150, 20),       # Cy3: orange
    "cd3": (235, 40, 235),       # AF750: magenta
}
GREY = (255, 255, 255)
FALLBACK_COLOURS = [(255, 255, 0), (0, 255, 255), (255, 80, 80), (160, 160, 255)]

#: Percentiles of the overview used for automatic contrast.
AUTO_PERCENTILES = (0.5, 99.8)


@dataclass(frozen=True)
class ChannelDisplay:
    """Display of one channel; ``low``/``high`` in the slide's raw intensity units; ``gamma`` bends
    the window as in QuPath's Brightness & Contrast (shown = scaled ** (1/gamma); 1 = linear)."""

    name: str
    colour: tuple[int, int, int]
    low: float
    high: float
    visible: bool = True
    role: str = ""
    gamma: float = 1.0


@dataclass(frozen=True)
class DisplaySettings:
    """Display of every channel of a slide. ``version`` grows with each change (drives tile refresh)."""

    channels: tuple[ChannelDisplay, ...] = field(default_factory=tuple)
    version: int = 0

    def with_channel(self, index: int, *, visible: bool | None = None, low: float | None = None,
                     high: float | None = None, colour: tuple[int, int, int] | None = None,
                     gamma: float | None = None) -> DisplaySettings:
        """A copy with channel ``index`` changed in the fields given (None: unchanged)."""
        chans = list(self.channels)
        old = chans[index]
        chans[index] = replace(
            old, visible=old.visible if visible is None else visible, low=old.low if low is None else low,
            high=old.high if high is None else high, colour=old.colour if colour is None else colour,
            gamma=old.gamma if gamma is None else gamma,
        )
        return DisplaySettings(tuple(chans), self.version + 1)

    @property
    def visible_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.channels) if c.visible]


def auto_window(values: np.ndarray, percentiles: tuple[float, float] = AUTO_PERCENTILES) -> tuple[float, float]:
    """Contrast window (low, high) from percentiles of one channel's pixels; never empty."""
    flat = values.reshape(-1)
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(flat, percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def default_display(
    names: list[str], roles: list[str], overview: np.ndarray
) -> DisplaySettings:
    """Colours from channel roles, contrast from the overview (C, h, w); one channel shows in grey."""
    chans = []
    fallback = iter(FALLBACK_COLOURS * 4)
    for i, name in enumerate(names):
        role = roles[i] if i < len(roles) else ""
        if len(names) == 1:
            colour = GREY
        else:
            colour = ROLE_COLOURS.get(role) or next(fallback)
        lo, hi = auto_window(overview[i])
        chans.append(ChannelDisplay(name=name, colour=colour, low=lo, high=hi, role=role))
    return DisplaySettings(tuple(chans), 0)


def compose_rgb32(data: np.ndarray, display: DisplaySettings) -> np.ndarray:
    """Blend channels (C, h, w) of any dtype into an (h, w) uint32 array in Qt's RGB32 layout.

    Each visible channel is scaled by its window to 0..1, times its colour; channels add and clip.
    """
    _, h, w = data.shape
    acc = np.zeros((h, w, 3), dtype=np.float32)
    for i in display.visible_indices:
        if i >= data.shape[0]:
            continue
        ch = display.channels[i]
        scale = 1.0 / max(ch.high - ch.low, 1e-6)
        v = (data[i].astype(np.float32) - ch.low) * scale
        np.clip(v, 0.0, 1.0, out=v)
        if ch.gamma != 1.0:
            np.power(v, 1.0 / max(ch.gamma, 1e-3), out=v)
        for k in range(3):
            if ch.colour[k]:
                acc[..., k] += v * ch.colour[k]
    np.clip(acc, 0, 255, out=acc)
    return pack_argb(acc[..., 0], acc[..., 1], acc[..., 2])


def pack_argb(r: np.ndarray, g: np.ndarray, b: np.ndarray, a: np.ndarray | int = 255) -> np.ndarray:
    """Channels in 0-255 (any numeric dtype, truncated) as uint32 0xAARRGGBB: QImage's (A)RGB32 layout.

    The one place the app packs pixels for Qt: tiles, the cell and density rasters, the legend bar
    and the report preview all go through it.
    """
    out = np.asarray(b).astype(np.uint32)
    out |= np.asarray(g).astype(np.uint32) << np.uint32(8)
    out |= np.asarray(r).astype(np.uint32) << np.uint32(16)
    out |= np.asarray(a).astype(np.uint32) << np.uint32(24)
    return out
