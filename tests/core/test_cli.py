"""The headless CLI: every command has --help, and building the parser stays light."""

from __future__ import annotations

import subprocess
import sys

from core.cli import build_parser


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def test_expected_commands_exist():
    cmds = set(_commands())
    assert {"phantom", "analyse", "bench", "score", "report", "demo-case", "saliency"} <= cmds


def test_every_command_has_help(capsys):
    parser = build_parser()
    for name in _commands():
        try:
            parser.parse_args([name, "--help"])
        except SystemExit as stop:
            assert stop.code == 0
        out = capsys.readouterr().out
        assert "usage:" in out and name in out


def test_help_does_not_import_torch_or_qt():
    """`python -m core --help` must answer at once: heavy imports belong inside each command's run()."""
    code = (
        "import sys; from core.cli import build_parser; build_parser(); "
        "print(','.join(m for m in ('torch', 'PySide6', 'segmentation_models_pytorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"building the CLI parser imported {out}"
