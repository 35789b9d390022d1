"""Synthetic Hoechst + multiplex immunofluorescence slides with known truth (the phantom).

There is no public Hoechst + mIF data, so the demo, the tests, the demo model and the
benchmarks run on these. Every output says it is synthetic (phantom.json, OME name, TIFF
software tag). See SPEC "The phantom" and ``python -m core phantom --help``.
"""

from core.phantom.job import PhantomPaths, generate_phantom
from core.phantom.params import (
    CD3_HI_THRESHOLD,
    CHANNELS,
    COMPARTMENTS,
    THRESHOLDS,
    TYPES,
    PhantomParams,
    label_by_thresholds,
    lymphocyte_density,
)

__all__ = [
    "CD3_HI_THRESHOLD",
    "CHANNELS",
    "COMPARTMENTS",
    "THRESHOLDS",
    "TYPES",
    "PhantomParams",
    "PhantomPaths",
    "generate_phantom",
    "label_by_thresholds",
    "lymphocyte_density",
]
