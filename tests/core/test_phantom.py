"""The phantom: files readable as slides, deterministic, truth consistent, science as specified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import tifffile
import tiffslide
from shapely.geometry import shape

from core.errors import Cancelled
from core.phantom import (
    CHANNELS,
    THRESHOLDS,
    TYPES,
    PhantomParams,
    generate_phantom,
    label_by_thresholds,
)
from core.phantom.cells import place_cells
from core.phantom.layout import build_layout
from core.phantom.templates import build_bank
from core.phantom.writer import level_shapes
from core.progress import CancelToken, Progress, run_to_completion

LYMPH = ("CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")


def _make(params: PhantomParams, out: Path):
    progress: list[Progress] = []
    paths = run_to_completion(generate_phantom(params, out), progress.append)
    return paths, progress


@pytest.fixture(scope="module")
def hot(tmp_path_factory):
    """A 2048² phantom, immune-hot with a balanced lymphocyte mix: enough of every type."""
    out = tmp_path_factory.mktemp("phantom_hot")
    params = PhantomParams(size=2048, seed=3, infiltration_ct=1.0, infiltration_im=1.0,
                           subtype_mix=(0.25, 0.25, 0.25, 0.25))
    paths, progress = _make(params, out)
    return paths, progress, pd.read_csv(paths.cells_csv), json.loads(paths.metadata_json.read_text())


def test_files_are_calibrated_pyramidal_slides(hot):
    paths, progress, cells, meta = hot
    assert progress[-1].done == progress[-1].total
    with tiffslide.TiffSlide(paths.mif) as slide:
        assert float(slide.properties["tiffslide.mpp-x"]) == pytest.approx(0.227)
        assert float(slide.properties["tiffslide.mpp-y"]) == pytest.approx(0.227)
        assert slide.level_dimensions[:2] == ((2048, 2048), (1024, 1024))
        region = slide.read_region((900, 900), 0, (64, 48), as_array=True)
        assert region.shape == (48, 64, 4) and region.dtype == np.uint16
    with tifffile.TiffFile(paths.mif) as tf:
        assert tf.is_ome
        series = tf.series[0]
        assert series.axes == "CYX" and series.shape == (4, 2048, 2048)
        page = series.pages[0]
        assert page.is_tiled and page.tilewidth == 256 and page.compression == 8  # zlib
        assert "Hoechst" in tf.ome_metadata and 'PhysicalSizeX="0.227"' in tf.ome_metadata
        names = [c.split('"')[0] for c in tf.ome_metadata.split('Channel ID=')[1:]]
        assert len(names) == 4
        for name in CHANNELS:
            assert f'Name="{name}"' in tf.ome_metadata
        level0 = series.asarray()
    with tifffile.TiffFile(paths.hoechst) as tf:
        assert tf.series[0].shape == (2048, 2048)
        assert 'Name="Hoechst"' in tf.ome_metadata and "FITC" not in tf.ome_metadata
        np.testing.assert_array_equal(tf.series[0].asarray(), level0[0])
        low = tf.series[0].levels[1].asarray()
    # level 1 is the 2x2 area average of level 0
    expect = level0[0].astype(np.float32).reshape(1024, 2, 1024, 2).mean(axis=(1, 3))
    assert np.abs(low - expect).max() <= 1.0
    # Hoechst realistic: nuclei several thousand counts over a background of a few hundred
    assert 150 < np.percentile(level0[0], 5) < 600
    lym = cells[cells.type != "other"]
    assert 2500 < lym.mean_hoechst.median() < 8000
    assert meta["synthetic"] is True and meta["mpp"] == 0.227 and meta["size"] == 2048
    assert len(cells) > 300 and set(cells.type) == set(TYPES)
    assert list(cells.columns) == ["id", "x_px", "y_px", "x_um", "y_um", "type", "compartment", "area_um2",
                                   "mean_hoechst", "mean_fitc", "mean_cy3", "mean_af750"]


def test_level_shapes_reach_about_1024():
    assert level_shapes(4096) == [(4096, 4096), (2048, 2048), (1024, 1024)]
    assert level_shapes(40000)[-1] == (625, 625)


def _densities(cells: pd.DataFrame, tumour, tissue, w_px: float, mpp: float) -> dict:
    """What a scoring module does: CT/IM/stroma from the tumour outline, cells counted inside."""
    outer, inner = tumour.buffer(w_px), tumour.buffer(-w_px)
    regions = {
        "tumour_centre": inner.intersection(tissue),
        "invasive_margin": outer.difference(inner).intersection(tissue),
        "stroma": tissue.difference(outer),
    }
    out = {}
    for name, geom in regions.items():
        area = geom.area * (mpp / 1000) ** 2
        inside = shapely.contains_xy(geom, cells.x_px.to_numpy(), cells.y_px.to_numpy())
        out[name] = {t: float(((cells.type == t) & inside).sum() / area) for t in TYPES}
    return out


def test_densities_reproducible_from_truth_files(hot):
    paths, _, cells, meta = hot
    tumour = shape(json.loads(paths.tumour_geojson.read_text())["features"][0]["geometry"])
    feature = json.loads(paths.tumour_geojson.read_text())["features"][0]
    assert feature["properties"]["objectType"] == "annotation"
    assert feature["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}
    tissue = shape(json.loads(paths.tissue_geojson.read_text())["features"][0]["geometry"])
    mine = _densities(cells, tumour, tissue, meta["im_half_width_um"] / meta["mpp"], meta["mpp"])
    for comp, per_type in meta["densities"].items():
        for t, d in per_type.items():
            if d > 50:
                assert mine[comp][t] == pytest.approx(d, rel=0.05), (comp, t)
    lymph_im = sum(meta["densities"]["invasive_margin"][t] for t in LYMPH)
    assert lymph_im > 1000


def test_deterministic_for_a_seed(tmp_path):
    p = PhantomParams(size=700, seed=11, block_size=512)  # odd size, several blocks
    _make(p, tmp_path / "a")
    _make(p, tmp_path / "b")
    _make(PhantomParams(size=700, seed=12, block_size=512), tmp_path / "c")
    for name in ("mif.ome.tif", "hoechst.ome.tif", "cells.csv", "tumour.geojson", "phantom.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "mif.ome.tif").read_bytes() != (tmp_path / "c" / "mif.ome.tif").read_bytes()


def test_cancel_stops_and_leaves_no_scratch(tmp_path):
    token = CancelToken()
    job = generate_phantom(PhantomParams(size=1024, seed=1, block_size=512), tmp_path, token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_completion(job)
    assert not list(tmp_path.glob(".phantom-*"))


def _lymph_density(*params: PhantomParams) -> dict[str, float]:
    """Lymphocytes per mm² by compartment, pooled over phantoms (cells only, nothing rendered)."""
    names = ("tumour_centre", "invasive_margin", "stroma")
    counts = dict.fromkeys(names, 0.0)
    areas = dict.fromkeys(names, 0.0)
    for p in params:
        lay = build_layout(p)
        cells = place_cells(p, lay, build_bank(p.seed, p.mpp))
        for c, name in enumerate(names):
            counts[name] += float(((cells.type > 0) & (cells.compartment == c)).sum())
            areas[name] += lay.comp.areas_mm2[name]
    return {name: counts[name] / areas[name] for name in names}


def test_margin_denser_than_centre_and_infiltration_monotonic():
    d = _lymph_density(*(PhantomParams(size=4096, seed=s) for s in (4, 5, 6)))
    print(f"\ndefault lymphocytes/mm²: {d}")
    assert d["invasive_margin"] > 1.5 * d["tumour_centre"]
    assert d["invasive_margin"] > d["stroma"]
    ct = [_lymph_density(PhantomParams(size=4096, seed=4, infiltration_ct=x))["tumour_centre"] for x in (0, 0.35, 0.7, 1)]
    im = [_lymph_density(PhantomParams(size=4096, seed=4, infiltration_im=x))["invasive_margin"] for x in (0, 0.35, 0.7, 1)]
    print(f"CT by level: {ct}\nIM by level: {im}")
    assert all(a < b for a, b in zip(ct, ct[1:], strict=False))
    assert all(a < b for a, b in zip(im, im[1:], strict=False))
    assert ct[-1] > 20 * ct[0]


def test_thresholds_straddled_and_labelling_recovers_truth(hot):
    _, _, cells, meta = hot
    assert meta["labelling"]["thresholds"] == THRESHOLDS
    labels = label_by_thresholds(cells.mean_fitc, cells.mean_cy3, cells.mean_af750)
    truth = cells.type.to_numpy()
    lym = truth != "other"
    agree = float((labels[lym] == truth[lym]).mean())
    other_ok = float((labels[~lym] == "other").mean())
    near = []
    for col, thr, types in (("mean_fitc", 5000, ("CD20",)), ("mean_cy3", 4000, ("CD8_CD3LO", "CD8_CD3HI")),
                            ("mean_af750", 2200, ("CD3", "CD8_CD3HI"))):
        pos = cells[cells.type.isin(types)][col]
        near.append(float((np.abs(pos / thr - 1) < 0.2).mean()))
    print(f"\nlabelling agreement: lymphocytes {agree:.3f}, other {other_ok:.4f}; positives within ±20% of "
          f"threshold FITC/Cy3/AF750: {[round(n, 3) for n in near]}")
    assert 0.85 < agree < 1.0
    assert other_ok > 0.95  # neighbours' membranes spill into a few cells, as in real mIF
    assert all(0.0 < n < 0.3 for n in near)


def _texture_features(img: np.ndarray, cells: pd.DataFrame, mpp: float) -> np.ndarray:
    """Simple hand-made chromatin features around each centroid (no knowledge of the renderer)."""
    from scipy import ndimage as ndi

    r = int(round(4.0 / mpp))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    rr = np.hypot(yy, xx) * mpp
    inner, core, rim = rr < 2.6, rr < 1.6, (rr > 2.2) & (rr < 3.2)
    g1 = ndi.gaussian_filter(img.astype(np.float32), 1.0)
    g2 = ndi.gaussian_filter(img.astype(np.float32), 2.5)
    fine = img.astype(np.float32) - g1
    mid = g1 - g2
    feats = []
    for x, y in zip(cells.x_px.round().astype(int), cells.y_px.round().astype(int), strict=True):
        sl = (slice(y - r, y + r + 1), slice(x - r, x + r + 1))
        p, pf, pm = img[sl].astype(np.float32), fine[sl], mid[sl]
        m = p[inner].mean()
        feats.append([
            p[inner].std() / m,
            pf[inner].std() / m,
            pm[inner].std() / m,
            p[rim].mean() / p[core].mean(),
            np.percentile(p[inner], 95) / m,
        ])
    return np.asarray(feats)


def test_subtypes_differ_by_texture_not_size_or_brightness(hot):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    paths, _, cells, meta = hot
    img = tifffile.imread(paths.hoechst, level=0)
    r = int(round(4.0 / meta["mpp"])) + 1
    lym = cells[(cells.type != "other") & cells.x_px.between(r, 2048 - r) & cells.y_px.between(r, 2048 - r)]
    y = lym.type.to_numpy()
    assert min((y == t).sum() for t in LYMPH) >= 30

    def score(x: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
        cv = StratifiedKFold(5, shuffle=True, random_state=0)
        return float(cross_val_score(model, x, y, cv=cv, scoring="balanced_accuracy").mean())

    size_bright = score(lym[["area_um2", "mean_hoechst"]].to_numpy())
    texture = score(_texture_features(img, lym, meta["mpp"]))
    print(f"\nlymphocyte subtypes (n={len(lym)}), balanced accuracy (chance 0.25): "
          f"area+brightness {size_bright:.3f}, texture {texture:.3f}")
    assert size_bright < 0.45
    assert texture > 0.85


def test_cli_writes_phantom_and_preview(tmp_path, capsys):
    import argparse

    from core.cli import phantom as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    out, png = tmp_path / "p", tmp_path / "p.png"
    args = parser.parse_args(["phantom", "--size", "512", "--seed", "1", "--out", str(out), "--preview", str(png),
                              "--infiltration-ct", "0.2", "--infiltration-im", "0.9"])
    assert args.func(args) == 0
    assert "Mpx/s" in capsys.readouterr().out
    assert png.stat().st_size > 10_000
    meta = json.loads((out / "phantom.json").read_text())
    assert meta["params"]["infiltration_im"] == 0.9 and meta["synthetic"] is True


@pytest.mark.parametrize(("size", "seed"), [(256, 3), (512, 1), (512, 101)])
def test_tiny_slides_place_cells(size, seed):
    """Small maps once made the smoothed density fields overflow exp() and the Poisson draw fail."""
    p = PhantomParams(size=size, seed=seed)
    layout = build_layout(p)
    cells = place_cells(p, layout, build_bank(p.seed, p.mpp))
    assert len(cells.x) > 0
    assert np.all((cells.x >= 0) & (cells.x < size) & (cells.y >= 0) & (cells.y < size))
