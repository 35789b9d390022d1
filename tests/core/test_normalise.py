import numpy as np

from core.normalise import normalise_batch, normalise_patch


def test_patch_is_scaled_to_unit_range_by_its_own_extremes():
    a = np.array([[100, 200], [300, 500]], dtype=np.uint16)
    out = normalise_patch(a)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])


def test_flat_patch_becomes_zero_not_nan():
    out = normalise_patch(np.full((4, 4), 7, dtype=np.uint16))
    assert np.all(out == 0)


def test_batch_normalises_each_item_like_patch():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 60000, size=(3, 1, 8, 8)).astype(np.uint16)
    batch[1] = 5
    out = normalise_batch(batch)
    for i in range(3):
        np.testing.assert_allclose(out[i], normalise_patch(batch[i]), atol=1e-6)
