"""Fuzzing support shared by the fast fuzz tests and ``benchmarks/fuzz.py``: seed files, mutators, probes,
and a fork-per-input runner that survives crashes, hangs and memory blow-ups.

Seeds are small valid files written for real (OME-TIFF pyramid, strip TIFF, ImageJ TIFF, CZI plain
and zstd); mutators are seeded (``random.Random``) so every input can be made again from its seed.
Mutations aim where parsers trust numbers: TIFF tag values and IFD entries, CZI header, directory
and sub-block fields, plus random byte flips, integer overwrites and truncation. GeoJSON mutations
replace, delete or retype nodes of a valid QuPath file.

A probe does what the app does with an input (open, thumbnail, a few reads; import, derive CT/IM,
export) and returns normally or raises. :func:`run_isolated` runs one probe in a forked child with
a time and memory limit and classifies the outcome: ``ok``, ``product`` (a CoreError: a message for
the user), ``other`` (any other exception: a defect), ``timeout``, ``crash`` (killed by a signal).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import resource
import select
import signal
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OUTCOMES = ("ok", "product", "other", "timeout", "crash")
INTERESTING_INTS = (0, 1, -1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**40, 2**62, -(2**31))


def preload() -> None:
    """Import every module the probes use, once, in the parent: a forked child then starts in
    milliseconds instead of importing tiffslide/zarr/libCZI (seconds) for every input."""
    import core.regions  # noqa: F401
    import core.slides  # noqa: F401
    import core.slides._czi  # noqa: F401
    import core.slides._tiff  # noqa: F401


# --- seed files -------------------------------------------------------------------------------------
def write_seeds(folder: Path) -> dict[str, Path]:
    """Small valid slide files of every supported family; name -> path."""
    import tifffile
    from pylibCZIrw import czi as pyczi

    from tests.conftest import write_ome_pyramid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    seeds: dict[str, Path] = {}
    data = rng.integers(0, 4000, (2, 256, 256), dtype=np.uint16)
    seeds["ome"] = write_ome_pyramid(folder / "seed.ome.tif", data, mpp=0.5, names=("Hoechst", "FITC"), levels=2, tile=64)
    seeds["strips"] = folder / "seed-strips.tif"
    tifffile.imwrite(seeds["strips"], rng.integers(0, 255, (150, 200), dtype=np.uint8), rowsperstrip=16,
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER")  # fmt: skip
    seeds["imagej"] = folder / "seed-imagej.tif"
    tifffile.imwrite(seeds["imagej"], rng.integers(0, 4000, (2, 128, 160), dtype=np.uint16), imagej=True,
                     metadata={"axes": "CYX", "unit": "micron", "Labels": ["DAPI", "Cy3"]}, resolution=(2.0, 2.0))  # fmt: skip
    for name, compression in (("czi", None), ("czi-zstd", "zstd1:ExplicitLevel=1;PreProcess=HiLoByteUnpack")):
        path = folder / f"seed-{name}.czi"
        opts = {"compression_options": compression} if compression else {}
        with pyczi.create_czi(str(path), exist_ok=True, **opts) as czi:
            for c in range(2):
                for y in (0, 128):
                    tile = np.ascontiguousarray(rng.integers(0, 4000, (128, 256), dtype=np.uint16))
                    czi.write(data=tile, plane={"C": c}, location=(0, y))
            czi.write_metadata(channel_names={0: "Hoechst", 1: "Cy3"}, scale_x=0.5e-6, scale_y=0.5e-6)
        seeds[name] = path
    return seeds


# --- slide mutators ---------------------------------------------------------------------------------
def _tiff_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every IFD entry's count and value field in a TIFF/BigTIFF (first 4 IFDs)."""
    try:
        order = "<" if data[:2] == b"II" else ">"
        big = struct.unpack_from(order + "H", data, 2)[0] == 43
        ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        fields: list[tuple[int, int]] = []
        for _ in range(4):
            if not 0 < ifd < len(data) - 16:
                break
            n = struct.unpack_from(order + ("Q" if big else "H"), data, ifd)[0]
            entry, first = (20, ifd + 8) if big else (12, ifd + 2)
            for k in range(min(n, 64)):
                e = first + k * entry
                fields += [(e + 4, 8 if big else 4), (e + (12 if big else 8), 8 if big else 4)]
            nxt = first + n * entry
            ifd = struct.unpack_from(order + ("Q" if big else "I"), data, nxt)[0] if nxt + 8 <= len(data) else 0
        return fields
    except struct.error:
        return []


def _czi_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the CZI fields libCZI trusts: file header, directory entries, sub-block headers."""
    fields = [(o, 8) for o in (16, 24, 84, 92, 104)] + [(32, 4), (80, 4), (100, 4)]
    try:
        directory = struct.unpack_from("<q", data, 84)[0]
        if not 0 < directory < len(data) - 160:
            return fields
        fields += [(directory + 16, 8), (directory + 24, 8), (directory + 32, 4)]
        pos = directory + 160
        for _ in range(16):
            if pos + 32 > len(data):
                break
            n = struct.unpack_from("<i", data, pos + 28)[0]
            fields += [(pos + 2, 4), (pos + 6, 8), (pos + 14, 4), (pos + 18, 4), (pos + 28, 4)]
            fields += [(pos + 32 + 20 * k + off, 4) for k in range(min(max(n, 0), 8)) for off in (4, 8, 16)]
            sub = struct.unpack_from("<q", data, pos + 6)[0]
            if 0 < sub < len(data) - 64:
                fields += [(sub + 16, 8), (sub + 24, 8), (sub + 32, 4), (sub + 36, 4), (sub + 40, 8), (sub + 48 + 28, 4)]
            pos += 32 + 20 * max(0, min(n, 16))
    except struct.error:
        pass
    return fields


def mutate_slide(data: bytes, rng: random.Random, kind: str) -> bytes:
    """One to three mutations of a slide file's bytes, aimed at structure fields most of the time."""
    out = bytearray(data)
    fields = _czi_fields(data) if kind.startswith("czi") else _tiff_fields(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.55 and fields:
            pos, size = rng.choice(fields)
            if pos + size <= len(out):
                value = rng.choice(INTERESTING_INTS) if rng.random() < 0.7 else rng.randrange(-(2**31), 2**32)
                if rng.random() < 0.3:  # near the original value: off-by-a-little offsets and sizes
                    old = int.from_bytes(out[pos : pos + size], "little", signed=True)
                    value = old + rng.choice((-1, 1, -8, 8, -4096, 4096, old))
                out[pos : pos + size] = (value % 2 ** (8 * size)).to_bytes(size, "little")
        elif op < 0.75:
            for _ in range(rng.randint(1, 16)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        elif op < 0.85:
            pos = rng.randrange(len(out))
            out[pos : pos + rng.randint(1, 4096)] = bytes(min(4096, len(out) - pos))[: rng.randint(1, 4096)]
        elif op < 0.95:
            del out[rng.randrange(16, len(out)) :]
        else:
            pos = rng.randrange(len(out))
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(out)


def probe_slide(path: Path) -> str:
    """What the app does on opening a slide: properties, thumbnail, reads at level 0, a coarse level and an mpp."""
    from core.slides import open_slide

    with open_slide(path) as s:
        w, h = s.dimensions
        _ = (s.channel_names, s.level_dimensions, s.mpp, repr(s))
        s.thumbnail(max_size=256)
        s.read_region((0, 0), 0, (64, 64))
        s.read_region((w // 2 - 40, h // 2 - 40), 0, (80, 80), channels=0)
        s.read_region((0, 0), s.level_count - 1, (32, 32))
        if s.is_calibrated:
            s.read_region_at_mpp((w // 3, h // 3), (48, 48), mpp=max(s.mpp) * 1.7, channels=[0])
    return f"{w}x{h}"


# --- GeoJSON ------------------------------------------------------------------------------------------
def seed_geojson() -> dict[str, Any]:
    """A QuPath export: tumour, exclusion, stroma, a point; level-0 pixels on a 4000² slide."""

    def feature(cls: str | None, geometry: dict[str, Any], name: str = "") -> dict[str, Any]:
        props: dict[str, Any] = {"objectType": "annotation", "isLocked": False}
        if cls:
            props["classification"] = {"name": cls, "color": [200, 0, 0]}
        if name:
            props["name"] = name
        return {"type": "Feature", "id": f"id-{cls}-{name}", "geometry": geometry, "properties": props}

    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.c_[2000 + 1200 * np.cos(t), 2000 + 900 * np.sin(t)].round(1).tolist()
    square = [[300, 300], [900, 300], [900, 800], [300, 800], [300, 300]]
    return {"type": "FeatureCollection", "features": [
        feature("Tumor", {"type": "Polygon", "coordinates": [ring + ring[:1]]}, "T1"),
        feature("Ignore*", {"type": "Polygon", "coordinates": [[[1900, 1900], [2100, 1900], [2100, 2100], [1900, 2100], [1900, 1900]]]}),
        feature("Stroma", {"type": "MultiPolygon", "coordinates": [[square]]}, "S"),
        feature(None, {"type": "Point", "coordinates": [10, 10]}),
    ]}  # fmt: skip


def _random_value(rng: random.Random) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: rng.choice([None, True, False, 0, -1, 5, 2**70, 1e308, -1e308, 0.5, "", "Tumor", "x" * 300]),
        lambda: float(rng.choice(["nan", "inf", "-inf"])),
        lambda: [], lambda: {}, lambda: [[[]]], lambda: {"type": "Feature"},
        lambda: [rng.uniform(-1e6, 1e6) for _ in range(rng.randint(0, 4))],
        lambda: {"type": rng.choice(["Polygon", "MultiPolygon", "Point", "LineString", "GeometryCollection", "Topology"]),
                 "coordinates": [[[rng.uniform(0, 4000), rng.uniform(0, 4000)] for _ in range(rng.randint(0, 1200))]]},
        lambda: {"name": rng.choice([None, 5, "Tumor", ["Tumor"], {"a": 1}]), "color": rng.choice([None, "red", [1, 2], [1e400, 0, 0], -5, 2**40])},
        lambda: f"{_DEEP}{rng.randint(10, 100_000)}",
    ]  # fmt: skip
    return rng.choice(choices)()


_DEEP = "\x00deep:"  # stands for a list nested N deep, written out only as text (see dumps_geojson)


def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if len(path) > 12:
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:50]):
            out += _nodes(v, (*path, i))
    return out


def mutate_geojson(doc: dict[str, Any], rng: random.Random) -> Any:
    """One to three structural mutations: replace, delete or duplicate a node, or retype a string."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _nodes(doc)
        path = rng.choice(paths)
        if not path:
            if rng.random() < 0.2:
                doc = _random_value(rng)
            continue
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        key = path[-1]
        op = rng.random()
        if op < 0.6:
            parent[key] = _random_value(rng)
        elif op < 0.75 and isinstance(parent, dict | list):
            del parent[key]
        elif op < 0.85 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif isinstance(parent[key], str):
            parent[key] = rng.choice(["Feature", "FeatureCollection", "Polygon", "annotation", "detection", "tumour", "", "Center"])
        elif isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
            parent[key] = rng.choice([0, -parent[key], parent[key] * 1e12, float("nan"), str(parent[key])])
    return doc


def dumps_geojson(doc: Any) -> str:
    """JSON text as a careless writer would make it (NaN/Infinity allowed), deep nesting written out."""
    text = json.dumps(doc)
    marker = json.dumps(_DEEP)[:-1]  # the opening quote and escaped marker
    while marker in text:
        start = text.index(marker)
        end = text.index('"', start + 1)
        depth = int(text[start + len(marker) : end])
        text = text[:start] + "[" * depth + "0" + "]" * depth + text[end + 1 :]
    return text


def probe_geojson(path: Path) -> str:
    """Import as the app and ``core score`` do, derive CT/IM from the tumour, export regions and cells."""
    from core.regions import (
        RegionKind,
        RegionSet,
        read_cells_geojson,
        read_regions_geojson,
        regions_to_geojson,
    )

    mpp = (0.5, 0.5)
    imported = read_regions_geojson(path, mpp, bounds_um=(2000.0, 2000.0))
    regions = RegionSet(imported.regions, bounds_um=(2000.0, 2000.0))
    if regions.of_kind(RegionKind.TUMOUR):
        regions.replace_ct_im_by_derived(150.0)
    json.dumps(regions_to_geojson(list(regions), mpp))
    read_cells_geojson(path, mpp)
    return f"{len(regions)} regions"


# --- isolation ----------------------------------------------------------------------------------------
@dataclass
class Outcome:
    outcome: str  # one of OUTCOMES
    detail: str
    seconds: float
    peak_mb: float  # the child's largest resident set, pages inherited from the parent included
    parent_mb: float = 0.0  # the parent's resident set when it forked: what the child started with


def _resident_mb() -> float:
    """This process's resident set now (Linux /proc/self/statm), 0 where unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _virtual_bytes() -> int:
    """This process's virtual memory size (Linux), 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_isolated(probe: Callable[[], str], timeout_s: float = 10.0, memory_mb: int = 4096) -> Outcome:
    """Run ``probe`` in a forked child and classify how it ended.

    The child may map ``memory_mb`` more than the parent had mapped (RLIMIT_AS), so a runaway
    allocation is a MemoryError ("other"), not a machine brought to its knees.
    """
    from core.errors import CoreError

    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    parent_mb = _resident_mb()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code, text = 0, ""
        try:
            limit = _virtual_bytes() + memory_mb * 2**20  # on top of what the libraries already map
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            text = "ok\t" + probe()
        except CoreError as err:
            text = f"product\t{type(err).__name__}: {err}"
        except BaseException as err:  # noqa: BLE001 - classified, not handled
            tb = traceback.extract_tb(err.__traceback__)
            where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
            text = f"other\t{type(err).__name__} at {where}: {str(err)[:200]}"
        try:
            os.write(write_fd, text.encode("utf-8", "replace")[:4000])
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    status, usage = None, None
    deadline = start + timeout_s
    while status is None:
        ready, _, _ = select.select([read_fd], [], [], 0.05)
        if ready:
            chunk = os.read(read_fd, 4096)
            if chunk:
                chunks.append(chunk)
        done_pid, st, ru = os.wait4(pid, os.WNOHANG)
        if done_pid:
            status, usage = st, ru
        elif time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, st, ru = os.wait4(pid, 0)
            os.close(read_fd)
            return Outcome("timeout", f"over {timeout_s:g} s", time.perf_counter() - start, ru.ru_maxrss / 1024,
                           parent_mb)
    while True:
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    seconds = time.perf_counter() - start
    peak = usage.ru_maxrss / 1024 if usage else math.nan
    if os.WIFSIGNALED(status):
        return Outcome("crash", f"signal {os.WTERMSIG(status)}", seconds, peak, parent_mb)
    text = b"".join(chunks).decode("utf-8", "replace")
    outcome, _, detail = text.partition("\t")
    if outcome not in OUTCOMES:
        return Outcome("crash", f"exit {os.WEXITSTATUS(status)} without a result", seconds, peak, parent_mb)
    return Outcome(outcome, detail, seconds, peak, parent_mb)
