"""Explain the model's calls: HiPe saliency maps and feature visualisation (paper section 5)."""

from core.saliency.features import FeatureVisResult, feature_loss, feature_visualisation_job, quadrant_masks
from core.saliency.hipe import PERTURBATIONS, HipeResult, exhaustive_occlusion, hipe, hipe_job

__all__ = [
    "PERTURBATIONS",
    "FeatureVisResult",
    "HipeResult",
    "exhaustive_occlusion",
    "feature_loss",
    "feature_visualisation_job",
    "hipe",
    "hipe_job",
    "quadrant_masks",
]
