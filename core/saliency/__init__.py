"""Explain the model's calls: HiPe saliency maps and feature visualisation (paper section 5)."""

from core.saliency.eta import SaliencyEta
from core.saliency.explain import (
    ClassDone,
    ContextReady,
    ExplainContext,
    ExplainPatch,
    Explanation,
    HipeStep,
    cell_mask_at,
    default_target,
    dilate,
    explain_job,
    explain_point_job,
    mass_inside,
    positive_targets,
    prepare,
    rank_inside,
    read_patch,
)
from core.saliency.features import FeatureVisResult, feature_loss, feature_visualisation_job, quadrant_masks
from core.saliency.hipe import PERTURBATIONS, HipeResult, exhaustive_occlusion, hipe, hipe_job

__all__ = [
    "PERTURBATIONS",
    "ClassDone",
    "ContextReady",
    "ExplainContext",
    "ExplainPatch",
    "Explanation",
    "FeatureVisResult",
    "HipeResult",
    "HipeStep",
    "SaliencyEta",
    "cell_mask_at",
    "default_target",
    "dilate",
    "exhaustive_occlusion",
    "explain_job",
    "explain_point_job",
    "feature_loss",
    "feature_visualisation_job",
    "hipe",
    "hipe_job",
    "mass_inside",
    "positive_targets",
    "prepare",
    "quadrant_masks",
    "rank_inside",
    "read_patch",
]
