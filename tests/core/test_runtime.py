"""Model runtime: device and precision choice, safe loading, prediction, out-of-memory halving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.engine._batching import predict_with_backoff
from core.errors import ConfigError, CoreError, ModelCardError, ModelLoadError
from core.models import ModelCard, build_model, save_model, sha256_file
from core.models.precision import Hardware, precision_plan
from core.models.runtime import (
    PARITY_THRESHOLD,
    default_model_dir,
    load_model,
    parity_input,
    precision_agreement,
)

TINY = ModelCard(name="tiny", encoder="resnet18", mpp=0.5, patch_size=64, synthetic=True)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model")
    save_model(build_model(TINY).eval(), TINY, out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


NATIVE_BF16_CPU = Hardware("cpu", True, "CPU has native bf16 (amx_bf16; stated by the test)")
AVX2_CPU = Hardware("cpu", False, "CPU has no native bf16 (stated by the test)")


@pytest.mark.parametrize("hardware", [None, NATIVE_BF16_CPU, AVX2_CPU], ids=["this-cpu", "amx", "avx2"])
def test_cpu_default_is_fp32_whatever_the_cpu(tiny_dir: Path, hardware: Hardware | None) -> None:
    """No timing race: the CPU default is fp32 on this CPU, on one with AMX and on one without."""
    for requested in (None, "auto"):
        model = load_model(tiny_dir, device="cpu", precision=requested, hardware=hardware)
        assert model.device.type == "cpu" and model.card.name == "tiny"
        assert model.precision == "fp32" and "CPU default" in model.precision_reason


def test_bf16_on_a_cpu_only_when_asked_and_its_cost_stated() -> None:
    assert precision_plan("bf16", NATIVE_BF16_CPU).candidates == ("bf16",)
    assert "slower" not in precision_plan("bf16", NATIVE_BF16_CPU).reason
    assert "several times slower" in precision_plan("bf16", AVX2_CPU).reason
    with pytest.raises(ConfigError, match="fp16 is only used on CUDA"):
        precision_plan("fp16", NATIVE_BF16_CPU)


def test_cuda_default_depends_only_on_the_gpu() -> None:
    """On CUDA the default is a reduced precision (parity-checked, fp32 fallback): fixed per GPU model."""
    with_bf16, without = Hardware("cuda", True, "GPU A"), Hardware("cuda", False, "GPU B")
    assert precision_plan(None, with_bf16).candidates == ("bf16",) and precision_plan(None, with_bf16).fallback
    assert precision_plan("auto", without).candidates == ("fp16",)
    explicit = precision_plan("fp16", with_bf16)  # honoured or refused, never silently replaced
    assert explicit.candidates == ("fp16",) and not explicit.fallback
    with pytest.raises(ConfigError, match="no bf16 support.*fp16 or fp32"):
        precision_plan("bf16", without)


def test_predict_is_softmax_and_classes_match(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, device="cpu", precision="fp32")
    x = parity_input(64, n=2)
    prob = model.predict(x)
    assert prob.shape == (2, 5, 64, 64) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    cls, p = model.predict_classes(x, crop=8)
    assert cls.shape == (2, 48, 48) and cls.dtype == np.uint8
    np.testing.assert_array_equal(cls, prob[:, :, 8:-8, 8:-8].argmax(axis=1))
    np.testing.assert_allclose(p, prob[:, :, 8:-8, 8:-8].max(axis=1), atol=1e-6)
    assert np.array_equal(model.predict(torch.from_numpy(x)), prob)


def test_bf16_parity_with_fp32(tiny_dir: Path) -> None:
    """bf16 is slow on AVX2 CPUs but must still classify like fp32 (small input, runs anyway)."""
    model = load_model(tiny_dir, device="cpu", precision="fp32")
    agreement = precision_agreement(model.module, parity_input(64, n=1), model.device, "bf16")
    assert agreement >= 0.98
    try:
        bf16 = load_model(tiny_dir, device="cpu", precision="bf16")
    except ModelLoadError as err:  # a random-weight model may fail the strict 99.5% check: refused clearly
        assert "agrees with fp32 on only" in str(err)
    else:
        assert bf16.precision == "bf16" and "agrees with fp32" in bf16.precision_reason
        assert agreement >= PARITY_THRESHOLD


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a computer without CUDA")
def test_cuda_requested_but_absent(tiny_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="CUDA was requested but is not available.*--device cpu"):
        load_model(tiny_dir, device="cuda")


def test_bad_device_and_precision(tiny_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="choose 'cpu' or 'cuda'"):
        load_model(tiny_dir, device="tpu")
    with pytest.raises(ModelLoadError, match="fp16 is only used on CUDA"):
        load_model(tiny_dir, device="cpu", precision="fp16")
    with pytest.raises(ModelLoadError, match="Unknown precision"):
        load_model(tiny_dir, device="cpu", precision="int8")
    with pytest.raises(ModelLoadError, match="No model at"):
        load_model(tiny_dir / "missing")


def test_pickle_renamed_as_safetensors_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_dir, tmp_path / "pickled")
    weights = bad / "model.safetensors"
    torch.save(build_model(TINY).state_dict(), weights)  # a pickle, hash updated so only the format is wrong
    card = json.loads((bad / "model.json").read_text())
    card["weights_sha256"] = sha256_file(weights)
    (bad / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_model(bad, device="cpu")


def test_tampered_weights_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_dir, tmp_path / "tampered")
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="do not match their card"):
        load_model(bad, device="cpu")


def test_card_with_unknown_field_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_dir, tmp_path / "future")
    card = json.loads((bad / "model.json").read_text())
    card["tile_overlap"] = 0.5
    (bad / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="unknown field.*tile_overlap"):
        load_model(bad, device="cpu")


def test_default_model_dir_is_the_shipped_demo() -> None:
    from core.resources import demo_model_dir

    assert default_model_dir() == demo_model_dir() and (default_model_dir() / "model.json").is_file()


def _fake_gpu(limit: int):
    calls: list[int] = []

    def predict(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(batch))
        if len(batch) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch[:, 0].astype(np.uint8), batch[:, 0] * 2

    return predict, calls


def test_out_of_memory_halves_the_batch_and_keeps_every_tile() -> None:
    batch = np.arange(7 * 1 * 2 * 2, dtype=np.float32).reshape(7, 1, 2, 2)
    predict, calls = _fake_gpu(limit=2)
    (cls, prob), size = predict_with_backoff(predict, batch, 8)
    assert size == 2
    assert calls == [7, 4, 2, 2, 2, 1]  # 7 and 4 fail, then chunks of 2 that fit
    np.testing.assert_array_equal(prob, batch[:, 0] * 2)
    (_, prob2), size2 = predict_with_backoff(predict, batch, size)
    assert size2 == 2 and np.array_equal(prob2, prob)


def test_out_of_memory_with_one_tile_and_other_errors() -> None:
    predict, _ = _fake_gpu(limit=0)
    with pytest.raises(CoreError, match="not enough free memory for even one tile"):
        predict_with_backoff(predict, np.zeros((4, 1, 2, 2), np.float32), 4)

    def broken(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        predict_with_backoff(broken, np.zeros((4, 1, 2, 2), np.float32), 4)
