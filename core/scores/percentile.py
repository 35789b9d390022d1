"""The one percentile convention the scores use, computed exactly.

Convention: the percentile rank of a value x in a reference of n values is the mean of the strict
rank (share of reference values < x) and the weak rank (share <= x), times 100:

    P(x) = 100 · (#{v < x} + ½ · #{v = x}) / n

so ties count half. This is ``scipy.stats.percentileofscore(ref, x, kind="mean")``. The result
is a :class:`~fractions.Fraction`, so a mean percentile of exactly 25 is never read as
25.000000000000004 and pushed into the next category.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

PERCENTILE_CONVENTION = (
    "percentile rank = mean of the strict (<) and weak (<=) ranks, i.e. ties count half "
    "(scipy.stats.percentileofscore kind='mean'); values 0-100"
)


def percentile_rank_exact(reference: ArrayLike, value: float) -> Fraction:
    """Exact percentile rank (0-100) of ``value`` among the non-NaN ``reference`` values.

    Raises ValueError if the reference has no values.
    """
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[~np.isnan(ref)]
    if ref.size == 0:
        raise ValueError("the reference has no values")
    below = int(np.count_nonzero(ref < value))
    equal = int(np.count_nonzero(ref == value))
    return Fraction(100 * (2 * below + equal), 2 * ref.size)


def percentile_rank(reference: ArrayLike, value: float) -> float:
    """Percentile rank (0-100) of ``value``, as a float; see :func:`percentile_rank_exact`."""
    return float(percentile_rank_exact(reference, value))
