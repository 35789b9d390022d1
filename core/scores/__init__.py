"""Scores: cell densities per region, the Immunoscore-like (IS) and T-and-B scores. No Qt.

Each score is a small class (:class:`CellDensity`, :class:`ImmunoscoreLike`, :class:`TAndBScore`)
carrying its display ``name`` and ``help``; results are frozen dataclasses with ``to_dict()`` and
a :class:`Provenance`. Densities are cells/mm²; regions are in slide µm.
"""

from core.scores.base import REGION_LABELS, Provenance, Score, parameter_name
from core.scores.case import CaseScores, ScoringRegions, drawn_or_derived_ct_im, score_case
from core.scores.cohort import COHORT_PARAMETERS, MIN_COHORT_SIZE, RECOMMENDED_COHORT_SIZE, ReferenceCohort
from core.scores.density import CellDensity, DensityTable, RegionDensity, compute_densities
from core.scores.immunoscore import (
    IS_PARAMETERS,
    ImmunoscoreLike,
    ImmunoscoreLikeResult,
    is_category,
    is_level,
)
from core.scores.near_cut import COUNT_MARGIN, CategoryRange, count_margin, shifted_parameters
from core.scores.percentile import PERCENTILE_CONVENTION, percentile_rank, percentile_rank_exact
from core.scores.reference import STORE_COHORT_NAME, cohort_from_store, reference_values
from core.scores.table import format_scores
from core.scores.tandb import CUTOFF_CONVENTION, TB_PARAMETERS, TAndBResult, TAndBScore

#: Every score class, in display order.
SCORES: tuple[type[Score], ...] = (CellDensity, ImmunoscoreLike, TAndBScore)

__all__ = [
    "COHORT_PARAMETERS",
    "COUNT_MARGIN",
    "CUTOFF_CONVENTION",
    "IS_PARAMETERS",
    "MIN_COHORT_SIZE",
    "PERCENTILE_CONVENTION",
    "RECOMMENDED_COHORT_SIZE",
    "REGION_LABELS",
    "SCORES",
    "STORE_COHORT_NAME",
    "TB_PARAMETERS",
    "CaseScores",
    "CategoryRange",
    "CellDensity",
    "DensityTable",
    "ImmunoscoreLike",
    "ImmunoscoreLikeResult",
    "Provenance",
    "ReferenceCohort",
    "RegionDensity",
    "Score",
    "ScoringRegions",
    "TAndBResult",
    "TAndBScore",
    "cohort_from_store",
    "compute_densities",
    "count_margin",
    "format_scores",
    "is_category",
    "is_level",
    "parameter_name",
    "percentile_rank",
    "percentile_rank_exact",
    "reference_values",
    "drawn_or_derived_ct_im",
    "score_case",
    "shifted_parameters",
]
