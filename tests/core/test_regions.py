"""Regions: geometry validation, CT/IM derivation, the RegionSet and its change signal."""

from __future__ import annotations

import gc
import math

import pytest
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from core.errors import RegionError
from core.regions import (
    Region,
    RegionChange,
    RegionKind,
    RegionSet,
    Signal,
    clean_geometry,
    derive_ct_im,
    validate_region,
)


def test_region_area_and_kind() -> None:
    r = Region(kind="tumour", geometry=box(0, 0, 2000, 1500), name="T1")
    assert r.kind is RegionKind.TUMOUR
    assert r.area_mm2 == pytest.approx(3.0)
    assert r.display_name == "T1"
    assert Region(kind=RegionKind.EXCLUSION, geometry=box(0, 0, 1, 1)).display_name == "Exclusion"
    assert len({Region(kind="tissue", geometry=box(0, 0, 1, 1)).id for _ in range(3)}) == 3
    with pytest.raises(TypeError, match="Polygon or MultiPolygon"):
        Region(kind="tumour", geometry=LineString([(0, 0), (1, 1)]))
    with pytest.raises(RegionError, match="Unknown region kind 'lymph node'; valid kinds: tumour, "):
        Region(kind="lymph node", geometry=box(0, 0, 1, 1))


def test_bow_tie_is_repaired_and_reported() -> None:
    bow = Polygon([(0, 0), (100, 100), (100, 0), (0, 100)])  # self-intersecting at (50, 50)
    geom, report = clean_geometry(bow, what="T")
    assert geom.is_valid and isinstance(geom, MultiPolygon)
    assert geom.area == pytest.approx(5000.0)  # two triangles of 50 x 100 / 2
    assert report.repaired and "Self-intersection" in report.warnings[0]


def test_slivers_dropped_holes_kept() -> None:
    ring = box(0, 0, 100, 100).difference(box(40, 40, 60, 60))  # 20 x 20 hole
    speck = box(500, 500, 500.5, 500.5)  # 0.25 µm²
    spike = box(1000, 0, 1100, 0.1)  # 10 µm² but 0.1 µm thin
    geom, report = clean_geometry(MultiPolygon([ring, speck, spike]))
    assert geom.area == pytest.approx(10000 - 400)
    assert len(geom.interiors) == 1
    assert report.slivers_dropped == 2 and not report.repaired


def test_empty_or_sliver_only_geometry_raises() -> None:
    with pytest.raises(RegionError, match="no area"):
        clean_geometry(Polygon(), what="Tumour 1")
    with pytest.raises(RegionError, match="'speck'.*no usable area"):
        clean_geometry(box(0, 0, 0.5, 0.5), what="speck")
    with pytest.raises(RegionError, match="inside the slide"):
        clean_geometry(box(-100, -100, -10, -10), bounds_um=(1000, 1000))


def test_clipped_to_slide_with_fraction() -> None:
    geom, report = clean_geometry(box(-100, 0, 100, 100), bounds_um=(1000, 500))
    assert geom.bounds == (0, 0, 100, 100)
    assert report.clipped_fraction == pytest.approx(0.5)
    assert "50.0%" in report.warnings[0]


def test_validate_region_keeps_id() -> None:
    r = Region(kind="tumour", geometry=Polygon([(0, 0), (100, 100), (100, 0), (0, 100)]))
    clean, report = validate_region(r)
    assert clean.id == r.id and clean.geometry.is_valid and report.repaired


def _tumour_set(tumour: Polygon, *others: Region) -> RegionSet:
    """A region set holding a tumour outline (and ``others``), without slide bounds."""
    return RegionSet([Region(kind="tumour", geometry=tumour), *others])


def test_derive_ct_im_square() -> None:
    tumour = box(0, 0, 3000, 3000)
    rs = _tumour_set(tumour)
    ct, im, warnings = derive_ct_im(rs, im_half_width_um=500)
    # CT = tumour shrunk by 500 µm: 2000 x 2000 µm = 4 mm².
    assert ct.area / 1e6 == pytest.approx(4.0, rel=1e-9)
    # IM inner half: 9 - 4 = 5 mm²; outer half: 4000² - 3000² µm² minus 4 corner squares of
    # 500² plus 4 quarter discs of radius 500 (rounded corners) = 7 - 1 + 0.785398 mm².
    assert im.area / 1e6 == pytest.approx(5 + 6 + math.pi * 0.25, rel=1e-3)
    assert ct.intersection(im).area == pytest.approx(0, abs=1e-6)
    assert ct.union(im).intersection(tumour).area == pytest.approx(tumour.area)
    assert "not clipped to tissue" in warnings[0]
    assert len(rs) == 1  # deriving leaves the set as it was


def test_derive_ct_im_clipped_to_tissue_and_exclusions() -> None:
    tumour = box(0, 0, 3000, 3000)
    tissue = box(-1000, -1000, 1500, 4000)  # left half of the tumour and its margin
    necrosis = box(1000, 1000, 1200, 1200)  # inside CT: 0.04 mm²
    rs = _tumour_set(tumour, Region(kind="tissue", geometry=tissue), Region(kind="exclusion", geometry=necrosis))
    ct, im, warnings = derive_ct_im(rs, im_half_width_um=500)
    assert ct.area / 1e6 == pytest.approx(1.0 * 2.0 - 0.04)
    assert im.bounds[2] == pytest.approx(1500)
    assert not im.intersects(necrosis.buffer(-1e-6))
    assert warnings == []


def test_derive_ct_im_narrow_tumour_has_no_ct() -> None:
    ct, im, _ = derive_ct_im(_tumour_set(box(0, 0, 800, 5000)), im_half_width_um=500)
    assert ct.is_empty and im.area > 0
    with pytest.raises(RegionError, match="half-width"):
        derive_ct_im(_tumour_set(box(0, 0, 10, 10)), im_half_width_um=0)
    with pytest.raises(RegionError, match="No tumour region"):
        derive_ct_im(RegionSet(), im_half_width_um=500)


def test_regionset_edits_emit_changes() -> None:
    events: list[RegionChange] = []
    rs = RegionSet(bounds_um=(10000, 10000))
    rs.changed.connect(events.append)
    t = Region(kind="tumour", geometry=box(2000, 2000, 6000, 6000))
    rs.add(t)
    ex = Region(kind="exclusion", geometry=box(3000, 3000, 3500, 3500))
    rs.add(ex)
    assert len(rs) == 2 and t.id in rs and rs[t.id] == t
    rs.replace(Region(kind="tumour", geometry=box(2000, 2000, 7000, 7000), id=t.id))
    assert rs[t.id].area_mm2 == pytest.approx(25.0)
    rs.remove(ex.id)
    assert [e.action for e in events] == ["added", "added", "replaced", "removed"]
    with pytest.raises(RegionError, match="already"):
        rs.add(rs[t.id])
    with pytest.raises(RegionError, match="No region with id"):
        rs.remove("nope")


def test_regionset_derive_replaces_ct_im_once() -> None:
    tumour = Region(kind="tumour", geometry=box(500, 500, 4500, 4500))
    no_tissue = RegionSet([tumour], bounds_um=(5000, 5000))
    assert "not clipped to tissue" in no_tissue.replace_ct_im_by_derived(500)[0]
    rs = RegionSet([tumour, Region(kind="tissue", geometry=box(-10, -10, 6000, 6000))], bounds_um=(5000, 5000))
    events: list[RegionChange] = []
    rs.changed.connect(events.append)
    assert rs.replace_ct_im_by_derived(500) == []  # clipping at the slide edge is expected, not a warning
    assert [e.action for e in events] == ["reset"]
    assert rs.im_half_width_um == 500
    (ct,) = rs.of_kind("tumour_centre")
    (im,) = rs.of_kind(RegionKind.INVASIVE_MARGIN)
    assert ct.area_mm2 == pytest.approx(9.0)
    assert im.geometry.bounds == (0, 0, 5000, 5000)  # clipped to the slide
    rs.replace_ct_im_by_derived(360)
    assert len(rs.of_kind("tumour_centre")) == 1 and rs.im_half_width_um == 360
    warnings = rs.replace_ct_im_by_derived(2100)
    assert rs.of_kind("tumour_centre") == [] and "No Tumour centre (CT)" in warnings[0]


def test_regionset_rejects_bad_region_and_stays_unchanged() -> None:
    rs = RegionSet([Region(kind="tumour", geometry=box(0, 0, 10, 10))])
    with pytest.raises(RegionError):
        rs.reset([Region(kind="tumour", geometry=box(0, 0, 100, 100)),
                  Region(kind="tissue", geometry=Polygon())])
    assert len(rs) == 1 and rs.union("tumour").area == 100


def test_regionset_union_and_summary() -> None:
    rs = RegionSet([Region(kind="tumour", geometry=box(0, 0, 1000, 1000)),
                    Region(kind="tumour", geometry=box(500, 0, 1500, 1000), name="T2")])
    assert rs.union("tumour").area == pytest.approx(1.5e6)
    assert rs.union("exclusion") is None
    summary = rs.summary()
    assert [s["name"] for s in summary] == ["Tumour", "T2"] and summary[0]["area_mm2"] == 1.0


class _Listener:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_change(self, value: int) -> None:
        self.seen.append(value)


def test_signal_holds_methods_weakly_and_disconnects() -> None:
    sig: Signal[int] = Signal()
    listener = _Listener()
    sig.connect(listener.on_change)
    sig.connect(listener.on_change)  # no double call
    got: list[int] = []
    sig.connect(got.append)
    sig.emit(1)
    assert listener.seen == [1] and got == [1]
    sig.disconnect(got.append)
    del listener
    gc.collect()
    sig.emit(2)
    assert got == [1] and len(sig) == 0


def test_point_is_not_a_region() -> None:
    with pytest.raises(TypeError):
        Region(kind="tumour", geometry=Point(0, 0))


def test_derived_width_travels_with_the_regions_and_drawing_clears_it():
    """A reopened case (regions rebuilt from storage) must still know its CT/IM were derived."""
    rs = RegionSet([Region(kind=RegionKind.TUMOUR, geometry=box(0, 0, 2000, 2000))])
    rs.replace_ct_im_by_derived(150.0)
    assert rs.im_half_width_um == 150.0
    reopened = RegionSet(list(rs))
    assert reopened.im_half_width_um == 150.0
    im = reopened.of_kind(RegionKind.INVASIVE_MARGIN)[0]
    reopened.replace(Region(id=im.id, kind=RegionKind.INVASIVE_MARGIN, geometry=im.geometry))  # redrawn
    assert reopened.im_half_width_um is None
