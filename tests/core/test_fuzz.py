"""Fast seeded fuzzing (issue 14): damaged slides, damaged GeoJSON and nonsense CLI values.

A small derandomised subset of ``benchmarks/fuzz.py`` (which runs thousands of inputs). Slides and
GeoJSON run in forked children (``tests/fuzzing.run_isolated``), so a segfault, hang or memory
blow-up is a failed test, not a dead test run. The allowed outcomes are "ok" and "product" (a
CoreError with a message for the user).
"""

from __future__ import annotations

import argparse
import functools
import math
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import (
    dumps_geojson,
    mutate_geojson,
    mutate_slide,
    preload,
    probe_geojson,
    probe_slide,
    run_isolated,
    seed_geojson,
    write_seeds,
)

FAST = settings(max_examples=12, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip


@functools.cache
def _seeds() -> dict[str, bytes]:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    return {k: p.read_bytes() for k, p in write_seeds(folder).items()}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    preload()  # before forking, as benchmarks/fuzz.py does
    return tmp_path_factory.mktemp("fuzz")


def test_seed_files_are_read_whole(work: Path) -> None:
    """The mutations start from files that read cleanly (else every outcome would be an error)."""
    for name, data in _seeds().items():
        path = work / f"seed-{name}{'.czi' if name.startswith('czi') else '.tif'}"
        path.write_bytes(data)
        assert run_isolated(lambda p=path: probe_slide(p)).outcome == "ok", name


@pytest.mark.parametrize("kind", ["ome", "strips", "imagej", "czi", "czi-zstd"])
@FAST
@given(seed=st.integers(0, 2**31))
def test_damaged_slides_give_a_message_never_a_crash(work: Path, kind: str, seed: int) -> None:
    data = mutate_slide(_seeds()[kind], random.Random(seed), kind)
    path = work / f"damaged-{kind}{'.czi' if kind.startswith('czi') else '.tif'}"
    path.write_bytes(data)
    outcome = run_isolated(lambda: probe_slide(path), timeout_s=10.0)
    assert outcome.outcome in ("ok", "product"), f"{kind} seed {seed}: {outcome}"
    assert outcome.peak_mb - outcome.parent_mb < 2048  # what this input cost, not the test process it forked from


@settings(FAST, max_examples=30)
@given(seed=st.integers(0, 2**31))
def test_damaged_geojson_gives_a_message_never_a_traceback(work: Path, seed: int) -> None:
    path = work / "damaged.geojson"
    path.write_text(dumps_geojson(mutate_geojson(seed_geojson(), random.Random(seed))), encoding="utf-8")
    outcome = run_isolated(lambda: probe_geojson(path), timeout_s=10.0)
    assert outcome.outcome in ("ok", "product"), f"seed {seed}: {outcome}"


# --- command lines ----------------------------------------------------------------------------------
@functools.cache
def _parsers() -> dict[str, argparse.ArgumentParser]:
    from core.cli import build_parser
    from training.label import build_parser as label_parser
    from training.retrain import build_parser as retrain_parser

    found = {"retrain": retrain_parser(), "label": label_parser()}
    for action in build_parser()._subparsers._group_actions:  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction):
            found.update({f"core {name}": sub for name, sub in action.choices.items()})
    return found


def _valid(action: argparse.Action, folder: Path) -> list[str]:
    """A value every option's type accepts, to fill the required ones."""
    name = getattr(action.type, "__name__", "")
    value = {"existing_file": str(folder / "a-file"), "image_file": str(folder / "a-file"), "existing_dir": str(folder),
             "output_dir": str(folder / "out"), "output_file": str(folder / "out.json"), "integer": "1", "int": "1",
             "number": "1.5", "float": "1.5", "database_url": "sqlite://"}.get(name, "x")  # fmt: skip
    if action.choices:
        value = str(next(iter(action.choices)))
    n = action.nargs if isinstance(action.nargs, int) else 1
    return [value] * n


def _options() -> list[tuple[str, str]]:
    out = []
    for command, parser in _parsers().items():
        for action in parser._actions:
            if action.option_strings and action.type is not None and action.nargs != 0:
                out.append((command, action.option_strings[-1]))
    return sorted(out)


NONSENSE = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "", " ", "0", "-0", "1e309", "0x10", "1,2,3", "/dev/null", "../..", "-", "—", "ℵ"]),
    st.text(max_size=12),
)


@settings(FAST, max_examples=80)
@given(option=st.deferred(lambda: st.sampled_from(_options())), value=NONSENSE)
def test_nonsense_option_values_are_refused_or_sane(option: tuple[str, str], value: str, tmp_path_factory) -> None:
    """Each numeric or path option of every command line: refused by argparse (exit 2), or a sane value."""
    folder = tmp_path_factory.getbasetemp() / "cli-fuzz"
    folder.mkdir(exist_ok=True)
    (folder / "a-file").write_bytes(b"\x89PNG\r\n\x1a\n")
    command, flag = option
    parser = _parsers()[command]
    argv: list[str] = []
    for action in parser._actions:
        if action.required or (not action.option_strings and action.nargs not in ("?", "*")):
            argv += ([action.option_strings[-1]] if action.option_strings else []) + _valid(action, folder)
    target = next(a for a in parser._actions if flag in a.option_strings)
    n = target.nargs if isinstance(target.nargs, int) else 1
    try:
        args = parser.parse_args([*argv, flag, *([value] * n)] if not value.startswith("-") else [*argv, f"{flag}={value}"] if n == 1 else argv)
    except SystemExit as stop:
        assert stop.code == 2
        return
    parsed = getattr(args, target.dest)
    for item in parsed if isinstance(parsed, list) else [parsed]:
        if isinstance(item, float):
            assert math.isfinite(item), f"{command} {flag} accepted {value!r}"
