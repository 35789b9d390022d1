"""Rebuild ``.whl/``: the wheels ``benchmarks/gpu_suite.py`` carries to a lent GPU machine.

Why: that machine has Python 3.12 and torch but lacks several of the project's dependencies and has
no network, and one call carries at most 64 MiB (the tracked tree is ~35 MiB). ``.whl/`` is ignored
by git, so a session on another machine makes it again with::

    python benchmarks/gpu_wheels.py            # downloads from the package index into .whl/

imagecodecs is cut to the codecs these slides use (the tiled OME-TIFFs the phantom writes: zlib,
deflate, zstd, lzw, jpeg, png ...): its full wheel (26 MB) alone would push the call over the limit.
The cut wheel keeps every Python file and every licence; pip installs it with ``--no-deps``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: The project's pins (pyproject.toml) of what the GPU image lacks or may hold at another version.
WHEELS = (
    "segmentation-models-pytorch==0.6.0", "timm==1.0.31", "tiffslide==3.0.1", "tifffile==2026.3.3",
    "zarr==3.1.6", "numcodecs==0.16.6", "donfig==0.8.1.post1", "google-crc32c==1.9.0",
    "imagecodecs==2026.3.6", "shapely==2.2.0", "platformdirs==4.14.7",
)
#: imagecodecs extension modules kept (the rest are codecs no slide here uses).
KEEP_MODULES = {
    "_apng", "_bcn", "_bmp", "_bz2", "_ccitt", "_deflate", "_imcd", "_jpeg8", "_jpegsof3", "_ljpeg", "_lzf",
    "_pglz", "_pixarlog", "_png", "_qoi", "_quantize", "_rcomp", "_rgbe", "_shared", "_shared_cython", "_spng",
    "_tiff", "_zlib", "_zlibng", "_zstd",
}
#: Bundled shared libraries those modules link against.
KEEP_LIBS = ("libLerc", "libdeflate", "libjpeg", "liblzma", "libpng16", "libsharpyuv", "libtiff", "libwebp", "libzstd")


def _kept(name: str) -> bool:
    if name.startswith("imagecodecs.libs/"):
        return name.split("/", 1)[1].startswith(KEEP_LIBS)
    if name.startswith("imagecodecs/_") and ".so" in name:
        return name.split("/", 1)[1].split(".", 1)[0] in KEEP_MODULES
    return True


def cut_imagecodecs(wheel: Path) -> None:
    """Rewrite ``wheel`` in place with only the kept codecs (RECORD lists only what is left)."""
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / wheel.name
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(cut, "w", zipfile.ZIP_DEFLATED) as dst:
            names = [n for n in src.namelist() if _kept(n)]
            for n in names:
                data = src.read(n)
                if n.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines()
                    data = ("\n".join(ln for ln in lines if _kept(ln.split(",", 1)[0])) + "\n").encode()
                dst.writestr(n, data)
        shutil.move(str(cut), wheel)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", type=Path, default=Path(".whl"), help="folder for the wheels (default .whl)")
    p.add_argument("--python-version", default="3.12", help="the GPU image's Python (default 3.12)")
    args = p.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64", "--python-version", args.python_version,
                    "-d", str(args.dest), *WHEELS], check=True)
    for wheel in args.dest.glob("imagecodecs-*.whl"):
        cut_imagecodecs(wheel)
    total = sum(w.stat().st_size for w in args.dest.glob("*.whl"))
    print(f"{len(list(args.dest.glob('*.whl')))} wheels in {args.dest}, {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
