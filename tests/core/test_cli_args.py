"""Nonsense on the command line (issue 14 row 6): refused when read, with the option named; no traceback.

Every case in the issue's row 6 is parsed by the real parser of ``python -m core`` or of the
training command lines. argparse reports a refused value as ``error: argument --x: ...`` and exit
code 2 before any work starts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import build_parser
from core.cli.args import database_url, fractions, output_dir
from core.cli.failure import report_failure
from core.errors import RegionError
from training.label import build_parser as label_parser
from training.retrain import build_parser as retrain_parser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core_parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("args")
    a_file = d / "a-file.txt"
    a_file.write_text("not a folder")
    slide = d / "slide.tif"
    slide.write_bytes(b"II*\x00")
    geojson = d / "t.geojson"
    geojson.write_text("{}")
    return {"file": a_file, "slide": slide, "geojson": geojson, "dir": d}


def _refused(parser: argparse.ArgumentParser, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


CORE_CASES = [
    (["phantom", "--out", "{dir}/p", "--seed", "-1"], "--seed: must be a whole number at least 0, got -1"),
    (["phantom", "--out", "{dir}/p", "--threads", "0"], "--threads: must be a whole number at least 1, got 0"),
    (["phantom", "--out", "{dir}/p", "--size", "many"], "--size: expected a whole number at least 1, got 'many'"),
    (["analyse", "{slide}", "--out", "{dir}/o", "--batch-size", "0"], "--batch-size: must be a whole number at least 1"),
    (["analyse", "{slide}", "--out", "{dir}/o", "--threads", "-1"], "--threads: must be a whole number at least 1"),
    (["analyse", "{slide}", "--out", "{file}/out"], "--out: {file}/out cannot be created: {file} is a file"),
    (["analyse", "{slide}", "--out", "{dir}/o", "--checkpoint-dir", "{file}/c"], "--checkpoint-dir: {file}/c cannot be created"),
    (["analyse", "{dir}/missing.tif", "--out", "{dir}/o"], "slide: {dir}/missing.tif does not exist"),
    (["analyse", "{slide}", "--out", "{dir}/o", "--mpp", "0", "0.5"], "--mpp: must be a number above 0"),
    (["bench", "--cache", "{file}/cache"], "--cache: {file}/cache cannot be created"),
    (["demo-case", "--out", "{dir}/o", "--db", "bogus://"], "--db: database type 'bogus' is not supported"),
    (["demo-case", "--out", "{dir}/o", "--db", "not a url"], "--db: 'not a url' is not a database URL"),
    (["demo-case", "--out", "{dir}/o", "--db", "postgresql+pg8000://u@localhost/cases"], "pip install 'hoechstscore[postgres]'"),
    (["demo-case", "--out", "{dir}/o", "--db", "sqlite:///{file}/cases.db"], "--db: {file}/cases.db cannot be created"),
    (["demo-case", "--out", "{dir}/o", "--logo", "{dir}/nologo.png"], "--logo: {dir}/nologo.png does not exist"),
    (["demo-case", "--out", "{dir}/o", "--logo", "{file}"], "--logo: {file} is not a PNG or JPEG picture"),
    (["saliency", "{slide}", "--x", "nan", "--y", "1", "--out", "{dir}/s"], "--x: must be a number any finite number, got nan"),
    (["saliency", "{slide}", "--x", "1", "--y", "inf", "--out", "{dir}/s"], "--y: must be a number"),
    (["score", "--cells", "{file}", "--regions", "{geojson}", "--mpp", "0.5", "--out", "{dir}/s.json", "--im-width", "nan"],
     "--im-width: must be a number above 0, got nan"),
    (["score", "--cells", "{file}", "--regions", "{geojson}", "--mpp", "-1", "--out", "{dir}/s.json"], "--mpp: must be a number above 0"),
    (["score", "--cells", "{file}", "--regions", "{geojson}", "--mpp", "1", "--out", "{dir}"], "--out: {dir} is a folder"),
    (["report", "1", "--out", "{dir}/r.pdf", "--db", "mysql://u@h/d"], "--db: database type 'mysql' is not supported"),
]


@pytest.mark.parametrize(("argv", "message"), CORE_CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CORE_CASES])
def test_core_cli_refuses_nonsense(core_parser, files, capsys, argv: list[str], message: str) -> None:
    fill = {k: str(v) for k, v in files.items()}
    err = _refused(core_parser, [a.format(**fill) for a in argv], capsys)
    assert message.format(**fill) in err, err


RETRAIN_CASES = [
    (["--slides", "{dir}/missing.tif"], "--slides: {dir}/missing.tif does not exist"),
    (["--batch-size", "0"], "--batch-size: must be a whole number at least 1, got 0"),
    (["--lr", "-1"], "--lr: must be a number above 0, got -1"),
    (["--model-mpp", "0"], "--model-mpp: must be a number above 0, got 0"),
    (["--epochs", "0"], "--epochs: must be a whole number at least 1, got 0"),
    (["--max-steps", "-1"], "--max-steps: must be a whole number at least 1, got -1"),
    (["--split", "1,2,3"], "--split: give 3 fractions from 0 to 1 adding up to 1"),
    (["--split", "0,0.5,0.5"], "--split: give 3 fractions"),
    (["--patches-per-epoch", "-5"], "--patches-per-epoch: must be a whole number at least 1"),
    (["--threshold-cd3", "nan"], "--threshold-cd3: must be a number at least 0, got nan"),
    (["--time-limit", "-1"], "--time-limit: must be a number above 0, got -1"),
    (["--overlap", "0.99"], "--overlap: must be a number from 0 to 0.9"),
    (["--patch-size", "8"], "--patch-size: must be a whole number at least 32"),
]


@pytest.mark.parametrize(("argv", "message"), RETRAIN_CASES, ids=[c[0][0] + " " + c[0][1] for c in RETRAIN_CASES])
def test_retrain_refuses_nonsense(files, capsys, argv: list[str], message: str) -> None:
    fill = {k: str(v) for k, v in files.items()}
    err = _refused(retrain_parser(), ["--out", f"{files['dir']}/run", *[a.format(**fill) for a in argv]], capsys)
    assert message.format(**fill) in err, err


def test_retrain_accepts_sensible_values(files) -> None:
    args = retrain_parser().parse_args(["--out", f"{files['dir']}/run", "--split", "0.7,0.2,0.1", "--epochs", "3",
                                        "--max-steps", "10", "--lr", "1e-4", "--slides", str(files["slide"])])
    assert args.split == "0.7,0.2,0.1" and args.epochs == 3 and args.slides == [files["slide"]]


def test_label_refuses_missing_slides_and_bad_numbers(files, capsys) -> None:
    assert "does not exist" in _refused(label_parser(), [f"{files['dir']}/nope.tif"], capsys)
    assert "--match-um: must be a number above 0" in _refused(label_parser(), [str(files["slide"]), "--match-um", "0"], capsys)


def test_helpers_accept_what_is_valid(tmp_path: Path) -> None:
    assert output_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert database_url(f"sqlite:///{tmp_path}/x/cases.db").startswith("sqlite")
    assert database_url("sqlite://") == "sqlite://"  # in memory
    assert database_url("postgresql://u@localhost/cases")  # psycopg 3, SQLAlchemy's default driver: the postgres extra
    assert fractions(3)("1,0,0") == "1,0,0"


def test_unexpected_errors_are_one_message_and_a_hint(capsys) -> None:
    try:
        int("twelve")
    except ValueError as err:
        assert report_failure(err) == 1
    err = capsys.readouterr().err
    assert "error: unexpected ValueError: invalid literal" in err and "--debug" in err and "Traceback" not in err
    try:
        open("/nonexistent-dir/x.txt")  # noqa: SIM115 - the real OSError
    except OSError as err:
        assert report_failure(err, debug=True) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "No such file or directory (/nonexistent-dir/x.txt)" in err
    assert report_failure(RegionError("The region is bad.")) == 2
    assert capsys.readouterr().err == "error: The region is bad.\n"


def test_python_m_core_debug_shows_the_traceback(files, tmp_path: Path) -> None:
    """A real failure through the real entry point: without --debug one line, with it the traceback."""
    cells = tmp_path / "cells.csv"
    cells.write_text("x_um,y_um,class_name\n1,1,CD3\n")
    regions = tmp_path / "r.geojson"
    regions.write_text('{"type": "FeatureCollection", "features": "none"}')
    argv = ["score", "--cells", str(cells), "--regions", str(regions), "--mpp", "0.5", "--out", str(tmp_path / "s.json")]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    plain = subprocess.run([sys.executable, "-m", "core", *argv], capture_output=True, text=True, env=env, timeout=120)
    debug = subprocess.run([sys.executable, "-m", "core", "--debug", *argv], capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == debug.returncode == 2
    assert "FeatureCollection has no 'features' list" in plain.stderr and "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr and "FeatureCollection has no 'features' list" in debug.stderr
