"""Slides: one API to read every supported slide format (see ``docs/dev/CONTRACTS.md``).

``open_slide(path)`` recognises OME-TIFF, SVS, generic pyramidal TIFF, ImageJ hyperstack TIFF and
Zeiss CZI by content and returns a :class:`Slide`: levels, mpp (µm per level-0 pixel, or None when
uncalibrated), channels by name or role, ``read_region`` (level-0 location, channels-first,
zero-filled outside) and ``read_region_at_mpp`` (float32 at any pixel size). A Slide is safe to read
from several threads at once.
"""

from core.slides._base import ChannelSpec, Slide
from core.slides._open import open_slide
from core.slides.channels import CHANNEL_ALIASES

__all__ = ["open_slide", "Slide", "CHANNEL_ALIASES", "ChannelSpec"]
