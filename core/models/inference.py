"""The one way every entry point that counts cells loads its model: the app, `core analyse`, `core cohort`,
`core validate` and the demo.

Why one function: the app and `core validate` loaded the model with PyTorch while `core analyse` and
`core cohort` moved it to ONNX Runtime when installed (core.models.onnx_runtime). Both pass the
parity rule, but their probabilities differ in the last digits, so a cell whose confidence sits on
a cut could be counted differently by the app and by the CLI on the same computer, and
`core validate` measured a different path from the one users run. Now the precision rule
(core.models.precision) and the runtime rule are applied in one place, and what ran is recorded
with every analysis (``summary["runtime"]``, ``precision_reason``).

Gradient-based tools (saliency, feature visualisation) keep PyTorch: ONNX Runtime has no backward
pass, and they count nothing.
"""

from __future__ import annotations

from pathlib import Path

from core.models.runtime import LoadedModel, load_model


def load_for_inference(directory: str | Path, device: str | None = None, precision: str | None = None,
                       runtime: str = "auto", threads: int | None = None) -> LoadedModel:
    """Load the verified model in ``directory`` (``load_model``'s checks and precision rule) and put
    it on ``runtime`` ("auto": ONNX Runtime on a CPU at fp32 when installed and faithful, else
    PyTorch; "torch"; "onnxruntime"). ``threads``: ONNX Runtime's thread count (None: PyTorch's).
    Raises ModelCardError/ModelLoadError with a message saying what to do."""
    from core.models.onnx_runtime import with_runtime

    return with_runtime(load_model(directory, device=device, precision=precision), runtime, threads)
