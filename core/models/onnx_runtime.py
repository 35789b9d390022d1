"""ONNX Runtime for CPU inference: the same network, measured 1.4–3× faster than PyTorch eager.

``benchmarks/cpu_inference.py`` compared, in one run on the same phantom tiles (demo model, fp32,
2-core AVX2 CPU shared with other jobs), PyTorch eager, ONNX Runtime and OpenVINO: ONNX Runtime
took 235–246 ms per 256² tile against PyTorch's 349–645 ms, with 100% the same argmax classes
(docs/performance.md). It is an optional extra (``pip install hoechstscore[onnx]``: onnxruntime and
onnx, ~100 MB), used on the CPU at fp32 when installed.

The module is exported to ONNX in memory from the already verified weights (no file is written or
read; nothing is unpickled), then the same parity rule as for reduced precisions applies: on a
fixed seeded input its argmax classes must agree with PyTorch fp32 on ≥ 99.5% of pixels, else
PyTorch is kept and the reason recorded. Sessions run sequentially with a fixed thread count, so
results are deterministic for a given machine and setting.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from core.errors import ModelLoadError
from core.models.precision import RUNTIMES
from core.models.runtime import PARITY_THRESHOLD, LoadedModel, cpu_threads_hint, parity_input

if TYPE_CHECKING:  # optional: imported where a session is made
    from onnxruntime import InferenceSession


def onnxruntime_version() -> str | None:
    """The installed ONNX Runtime's version, or None when the optional extra is not installed."""
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


@dataclass
class OnnxRuntimeModel(LoadedModel):
    """A :class:`LoadedModel` whose forward pass runs in an ONNX Runtime session (CPU, fp32)."""

    session: InferenceSession | None = field(default=None, repr=False)
    runtime: ClassVar[str] = "onnxruntime"

    def logits(self, x: torch.Tensor, crop: int = 0) -> torch.Tensor:
        if self.session is None:
            raise ModelLoadError(f"{self.card.name}: no ONNX Runtime session; load it with with_runtime().")
        out = self.session.run(None, {"x": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        logits = torch.from_numpy(out)
        if crop > 0:
            logits = logits[:, :, crop:-crop, crop:-crop]
        return logits


def _session(module: torch.nn.Module, patch: int, threads: int) -> InferenceSession:
    import onnxruntime as ort

    buf = io.BytesIO()
    module = module.to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, (torch.zeros(1, 1, patch, patch),),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter takes a file-like object; torch's annotation lists paths
            input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    module.to(memory_format=torch.channels_last)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def with_runtime(model: LoadedModel, runtime: str = "auto", threads: int | None = None) -> LoadedModel:
    """``model`` running on ``runtime``: "torch" (as is), "onnxruntime", or "auto" (ONNX Runtime
    on a CPU at fp32 when installed and faithful, else as is). The reason is appended to
    ``precision_reason``. Explicit "onnxruntime" that cannot be used raises ModelLoadError."""
    if runtime not in RUNTIMES:
        raise ModelLoadError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    if runtime == "torch":
        return model
    why_not = None
    version = onnxruntime_version()
    if model.device.type != "cpu" or model.precision != "fp32":
        why_not = f"ONNX Runtime is used only on the CPU at fp32 (here {model.device.type}, {model.precision})"
    elif version is None:
        why_not = "ONNX Runtime is not installed (pip install 'hoechstscore[onnx]')"
    if why_not is not None:
        if runtime == "onnxruntime":
            raise ModelLoadError(f"Cannot run this model on ONNX Runtime: {why_not}. Use --runtime torch.")
        return model
    session = _session(model.module, model.card.patch_size, threads or torch.get_num_threads() or cpu_threads_hint())
    fast = OnnxRuntimeModel(model.module, model.card, model.device, model.precision, model.precision_reason,
                            model.directory, session=session)  # fmt: skip
    x = parity_input(size=min(model.card.patch_size, 256))
    agreement = float(np.mean(fast.predict_classes(x)[0] == model.predict_classes(x)[0]))
    if agreement < PARITY_THRESHOLD:
        reason = f"ONNX Runtime agrees with PyTorch on only {agreement:.2%} of pixels (< {PARITY_THRESHOLD:.1%})"
        if runtime == "onnxruntime":
            raise ModelLoadError(f"Refusing ONNX Runtime for this model: {reason}. Use --runtime torch.")
        model.precision_reason += f"; runtime PyTorch: {reason}"
        return model
    fast.precision_reason += f"; runtime ONNX Runtime {version} (agrees with PyTorch on {agreement:.2%} of pixels)"
    return fast
