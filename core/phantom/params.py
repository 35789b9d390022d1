"""Parameters of a synthetic slide and the marker facts every part of the phantom shares.

A phantom is fully determined by :class:`PhantomParams`: the same params give the same bytes.
The labelling rule (:func:`label_by_thresholds`) lives here, beside the thresholds the marker
intensities are drawn around, so a test or a labeller can recover the truth types from the
per-cell means in ``cells.csv`` exactly as the paper's QuPath classifier did.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

from core.errors import ConfigError
from core.jsontypes import JSONDict

#: Channel names written into the OME-TIFF, in order (SPEC "Formats": roles by alias).
CHANNELS: tuple[str, ...] = ("Hoechst", "FITC", "Cy3", "AF750")
#: Cell types of ``cells.csv`` (same names and order as ``core.classes.CLASS_NAMES``).
TYPES: tuple[str, ...] = ("other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")
#: Compartments of ``cells.csv`` and ``phantom.json``.
COMPARTMENTS: tuple[str, ...] = ("tumour_centre", "invasive_margin", "stroma")

#: Positivity thresholds on the per-cell mean (nucleus + 1 µm) of each marker channel (paper §3.3).
THRESHOLDS: dict[str, float] = {"FITC": 5000.0, "Cy3": 4000.0, "AF750": 2200.0}
#: Second CD3 threshold that splits CD8+ cells: AF750 >= this is CD8_CD3HI, below is CD8_CD3LO.
#: The phantom draws CD8_CD3LO cells with AF750 means of about 1200-2200 (dim CD3) and
#: CD8_CD3HI cells well above 2200, so the split straddles this value.
CD3_HI_THRESHOLD: float = 2200.0
#: The rule as words, written into phantom.json.
LABEL_RULE = (
    "Cy3 >= 4000: CD8_CD3HI if AF750 >= 2200 else CD8_CD3LO; "
    "else AF750 >= 2200: CD3; else FITC >= 5000: CD20; else other"
)

#: Lymphocyte subtype mix (paper Table 1 counts: 14536, 14480, 7528, 1412).
SUBTYPE_MIX: dict[str, float] = {
    "CD8_CD3LO": 14536 / 37956,
    "CD3": 14480 / 37956,
    "CD20": 7528 / 37956,
    "CD8_CD3HI": 1412 / 37956,
}

#: Lymphocyte density (cells/mm²) at infiltration level 0 and 1; levels map log-linearly between.
COLD_DENSITY = 30.0
HOT_DENSITY = 3000.0

VERSION = "1.0"


def lymphocyte_density(level: float) -> float:
    """Lymphocytes per mm² for an infiltration level in [0, 1] (0 immune-cold, 1 immune-hot).

    Log-linear, so a cohort drawn with uniform levels spans two decades of density as real
    colorectal cohorts do (CD3 ~30 to ~3000 cells/mm²): 0 -> 30, 0.5 -> 300, 1 -> 3000.
    """
    return COLD_DENSITY * (HOT_DENSITY / COLD_DENSITY) ** float(level)


def label_by_thresholds(fitc: ArrayLike, cy3: ArrayLike, af750: ArrayLike) -> np.ndarray:
    """Apply the labelling rule to per-cell means; returns an array of type names.

    Arguments are array-likes of per-cell mean intensities (counts), as in ``cells.csv``.
    """
    fitc, cy3, af750 = (np.asarray(a, dtype=float) for a in (fitc, cy3, af750))
    out = np.full(fitc.shape, "other", dtype=object)
    out[fitc >= THRESHOLDS["FITC"]] = "CD20"
    out[af750 >= THRESHOLDS["AF750"]] = "CD3"
    cd8 = cy3 >= THRESHOLDS["Cy3"]
    out[cd8 & (af750 >= CD3_HI_THRESHOLD)] = "CD8_CD3HI"
    out[cd8 & (af750 < CD3_HI_THRESHOLD)] = "CD8_CD3LO"
    return out


@dataclass(frozen=True)
class PhantomParams:
    """What to generate. Sizes are level-0 pixels; the slide is square.

    infiltration_ct / infiltration_im: immune infiltration level in [0, 1] of the tumour centre
    and of the invasive margin (see :func:`lymphocyte_density`); the defaults give a margin
    about 2.5x denser than the centre, the common "immune-intermediate" picture.
    im_half_width_um: half-width of the invasive margin band; None picks 500 µm, scaled down to
    a twelfth of the slide side for small slides so that centre, margin and stroma all exist.
    subtype_mix: fractions of CD8_CD3LO, CD3, CD20, CD8_CD3HI among lymphocytes (outside
    lymphoid aggregates); None uses the paper's Table 1 (about 38/38/20/4 %). A balanced mix
    (0.25 each) gives a model enough of the rare types to learn from.
    realism: "clean" (the original phantom) or "real" (:mod:`core.phantom.realism`: low nuclear
    contrast, uneven background, out-of-focus patches, touching lymphocyte clusters, dim and
    varying markers, debris, a rare marker on some slides). nuclear_contrast: with "real", the
    lymphocyte nucleus contrast in background SDs (None: drawn per slide in 4.5-7).
    """

    size: int = 4096
    seed: int = 0
    mpp: float = 0.227
    infiltration_ct: float = 0.4
    infiltration_im: float = 0.6
    im_half_width_um: float | None = None
    block_size: int = 1024
    compression: str = "zlib"
    threads: int = 2
    subtype_mix: tuple[float, float, float, float] | None = None
    realism: str = "clean"
    nuclear_contrast: float | None = None

    def __post_init__(self) -> None:
        if not 256 <= self.size <= 200_000:
            raise ConfigError(f"Phantom size {self.size} px is out of range; use 256 to 200000.")
        if not 0.05 <= self.mpp <= 5.0:
            raise ConfigError(f"Pixel size {self.mpp} µm is out of range; use 0.05 to 5 (e.g. 0.227).")
        for name in ("infiltration_ct", "infiltration_im"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} = {value} is out of range; use 0 (immune-cold) to 1 (hot).")
        if self.block_size % 256 or self.block_size < 256:
            raise ConfigError(f"block_size {self.block_size} must be a multiple of 256.")
        if self.compression not in ("zlib", "zstd", "none"):
            raise ConfigError(f"Compression {self.compression!r} unknown; use zlib, zstd or none.")
        if self.subtype_mix is not None and (
            len(self.subtype_mix) != 4 or min(self.subtype_mix) < 0 or sum(self.subtype_mix) <= 0
        ):
            raise ConfigError(f"subtype_mix {self.subtype_mix} needs 4 non-negative fractions.")
        if self.realism not in ("clean", "real"):
            raise ConfigError(f"realism {self.realism!r} unknown; use 'clean' or 'real'.")
        if self.nuclear_contrast is not None and (self.realism != "real" or not 1.0 <= self.nuclear_contrast <= 50.0):
            raise ConfigError(
                f"nuclear_contrast {self.nuclear_contrast} needs realism 'real' and a value of 1 to 50 "
                "background SDs (real exports: 4-8)."
            )
        if self.im_half_width_um is not None and self.im_half_width_um <= 0:
            raise ConfigError(f"im_half_width_um {self.im_half_width_um} must be positive.")

    @property
    def side_um(self) -> float:
        return self.size * self.mpp

    @property
    def im_half_width(self) -> float:
        """Invasive-margin half-width actually used, in µm."""
        if self.im_half_width_um is not None:
            return float(self.im_half_width_um)
        return float(min(500.0, math.floor(self.side_um / 12.0)))

    @property
    def mix(self) -> dict[str, float]:
        """Lymphocyte subtype fractions actually used (normalised)."""
        if self.subtype_mix is None:
            if self.realism == "real":
                from core.phantom.realism import subtype_mix

                return subtype_mix(self.seed, dict(SUBTYPE_MIX))
            return dict(SUBTYPE_MIX)
        total = float(sum(self.subtype_mix))
        return {k: v / total for k, v in zip(SUBTYPE_MIX, self.subtype_mix, strict=True)}

    def to_json(self) -> JSONDict:
        """Fields as JSON; ``realism`` only when not "clean", so clean phantoms keep their bytes
        (the OME UUID is derived from this dict)."""
        d: JSONDict = asdict(self)
        if self.realism == "clean":
            del d["realism"]
        if self.nuclear_contrast is None:
            del d["nuclear_contrast"]
        return d
