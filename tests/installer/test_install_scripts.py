"""installer/linux/install.sh and uninstall.sh on a small stand-in bundle, in a temporary HOME.

The scripts are what a lab user runs; these tests run them for real (bash, the system's
update-mime-database when present) on a folder laid out like dist/HoechstScore, whose program is a
shell script, so they take a second instead of the real bundle's minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "installer" / "linux"


def _fake_bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    prog = folder / "hoechstscore"
    prog.write_text('#!/bin/sh\necho "$(basename "$0") HoechstScore 0.1.0 $*"\n')
    prog.chmod(0o755)
    for name in ("hoechstscore-core", "hoechstscore-retrain"):
        (folder / name).symlink_to("hoechstscore")
    for name in ("install.sh", "uninstall.sh", "hoechstscore.desktop", "hoechstscore-mime.xml"):
        shutil.copy2(LINUX / name, folder / name)
    shutil.copy2(ROOT / "resources" / "icons" / "hoechstscore.png", folder / "hoechstscore.png")
    (folder / "_internal").mkdir()
    (folder / "_internal" / "data.bin").write_bytes(b"x" * 100)
    return folder


def _run(script: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60)


def _tree(home: Path) -> set[str]:
    """Every path under ``home``, less update-desktop-database's cache: where that tool exists it
    (re)writes mimeinfo.cache in an applications folder that was there before, as any install does."""
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.name != "mimeinfo.cache"}


def test_install_then_uninstall_leaves_home_as_it_was(tmp_path: Path) -> None:
    bundle = _fake_bundle(tmp_path / "HoechstScore-0.1.0-linux-x86_64")
    home = tmp_path / "home"
    own = home / ".local" / "share" / "applications" / "other.desktop"
    own.parent.mkdir(parents=True)
    own.write_text("[Desktop Entry]\nName=Other\n")  # the user's own entry must survive
    before = _tree(home)

    result = _run(bundle / "install.sh", home)
    assert result.returncode == 0, result.stderr
    dest = home / ".local" / "opt" / "HoechstScore"
    bin_dir = home / ".local" / "bin"
    for name in ("hoechstscore", "hoechstscore-core", "hoechstscore-retrain"):
        link = bin_dir / name
        assert link.is_symlink() and link.resolve().parent == dest.resolve()
        out = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=True).stdout
        assert out.startswith(f"{name} HoechstScore")  # the dispatcher sees the name it was started as
    desktop = (home / ".local/share/applications/hoechstscore.desktop").read_text()
    assert f"Exec={dest}/hoechstscore %f" in desktop and "@BIN@" not in desktop
    assert "MimeType=image/x-ome-tiff;application/x-czi;" in desktop
    assert (home / ".local/share/icons/hicolor/256x256/apps/hoechstscore.png").is_file()
    assert (home / ".local/share/mime/packages/hoechstscore-mime.xml").is_file()
    if shutil.which("update-mime-database"):
        globs = (home / ".local/share/mime/globs2").read_text()
        assert "image/x-ome-tiff:*.ome.tif" in globs and "application/x-czi:*.czi" in globs
    assert (dest / "_internal" / "data.bin").read_bytes() == b"x" * 100

    result = _run(dest / "uninstall.sh", home)
    assert result.returncode == 0, result.stderr
    assert _tree(home) == before
    assert own.read_text().startswith("[Desktop Entry]")


def test_install_twice_replaces_and_refuses_a_foreign_folder(tmp_path: Path) -> None:
    bundle = _fake_bundle(tmp_path / "b")
    home = tmp_path / "home"
    home.mkdir()
    assert _run(bundle / "install.sh", home).returncode == 0
    (bundle / "_internal" / "data.bin").write_bytes(b"new")
    again = _run(bundle / "install.sh", home)
    assert again.returncode == 0, again.stderr
    assert (home / ".local/opt/HoechstScore/_internal/data.bin").read_bytes() == b"new"
    assert _run(home / ".local/opt/HoechstScore/uninstall.sh", home).returncode == 0
    assert _tree(home) == set()

    foreign = home / ".local" / "opt" / "HoechstScore"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    refused = _run(bundle / "install.sh", home)
    assert refused.returncode == 1 and "not a HoechstScore install" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "mine"


def test_uninstall_without_install_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = _run(LINUX / "uninstall.sh", home)
    assert result.returncode == 1 and "no HoechstScore install" in result.stderr
    assert os.listdir(home) == []
