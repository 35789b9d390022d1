"""The CPU bundle's CUDA stand-ins (installer/cuda_stubs.py) on a small library built here.

A "real" library with versioned symbols, a function and a data object, plus a consumer that needs
it, are compiled with gcc; the stand-in made from them must satisfy the consumer's dependency when
the real one is gone, report no device from cudaGetDeviceCount and an error from any other call,
and must not define symbols the consumer takes from elsewhere (the libstdc++ copy some CUDA
libraries carry).
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("readelf") is None,
                                reason="needs gcc and readelf (binutils), as `make bundle` does")


def _load_module():
    spec = importlib.util.spec_from_file_location("cuda_stubs", ROOT / "installer" / "cuda_stubs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cuda_stubs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


REAL_C = """
int cudaGetDeviceCount(int *n) { *n = 4; return 0; }
int cudaMalloc(void **p, unsigned long size) { return 0; }
int cudaUnusedByConsumer(void) { return 0; }
char cudaTable[48] = {1};
/* A private copy of a C++ runtime symbol, as libcufile carries one. */
void _ZNSt13runtime_errorC1EPKc(void *self, const char *m) {}
"""
REAL_MAP = "libfakecudart.so.13 { global: *; };\n"
CONSUMER_C = """
extern int cudaGetDeviceCount(int *n);
extern int cudaMalloc(void **p, unsigned long size);
extern char cudaTable[48];
#include <stdexcept>
int count_devices(void) { int n = -1; int err = cudaGetDeviceCount(&n); return err == 100 ? n : -1000 - err; }
long malloc_status(void) { void *p; return cudaMalloc(&p, 16); }
int table_first(void) { return cudaTable[0]; }
int throws(void) { try { throw std::runtime_error("x"); } catch (const std::exception &) { return 1; } }
"""


def _compile(tmp: Path) -> tuple[Path, Path]:
    real_dir, cons_dir = tmp / "real", tmp / "consumer"
    real_dir.mkdir()
    cons_dir.mkdir()
    (tmp / "real.c").write_text(REAL_C)
    (tmp / "real.map").write_text(REAL_MAP)
    real = real_dir / "libfakecudart.so.13"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(real), str(tmp / "real.c"),
                    "-Wl,-soname,libfakecudart.so.13", f"-Wl,--version-script={tmp / 'real.map'}"], check=True)
    (tmp / "consumer.cpp").write_text('extern "C" {\n' + CONSUMER_C.replace("#include <stdexcept>", "}\n#include <stdexcept>\nextern \"C\" {") + "}\n")
    consumer = cons_dir / "libconsumer.so"
    # libstdc++ before the fake library, as torch was linked: the C++ symbols come from libstdc++.
    subprocess.run(["g++", "-shared", "-fPIC", "-o", str(consumer), str(tmp / "consumer.cpp"), "-lstdc++", str(real),
                    "-Wl,-rpath,$ORIGIN/../stubs"], check=True)
    return real, consumer


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_stand_in_satisfies_the_consumer_and_reports_no_device(tmp_path: Path) -> None:
    cuda_stubs = _load_module()
    real, consumer = _compile(tmp_path)
    assert "libfakecudart.so.13" in cuda_stubs.needed(consumer)

    (lib,) = cuda_stubs.plan_stubs([consumer], {"libfakecudart.so.13": real})
    assert set(lib.symbols) == {"cudaGetDeviceCount", "cudaMalloc", "cudaTable"}  # only what is used
    assert lib.symbols["cudaTable"].kind == "OBJECT" and lib.symbols["cudaTable"].size == 48
    assert lib.symbols["cudaMalloc"].version == "libfakecudart.so.13"

    built = cuda_stubs.build_stub(lib, tmp_path / "stubs", tmp_path / "work")
    assert built.stat().st_size < 64_000
    real.unlink()  # the real library is gone, as in the CPU bundle
    loaded = ctypes.CDLL(str(consumer))
    assert loaded.count_devices() == 0  # cudaErrorNoDevice and a count of 0
    loaded.malloc_status.restype = ctypes.c_long
    assert loaded.malloc_status() != 0  # any other call fails
    assert loaded.table_first() == 0
    assert loaded.throws() == 1  # C++ exceptions still use the real libstdc++


def test_message_is_what_error_strings_read(tmp_path: Path) -> None:
    cuda_stubs = _load_module()
    lib = cuda_stubs.StubLibrary("libx.so.1", {"cudaGetErrorString": cuda_stubs.Symbol("cudaGetErrorString", "FUNC", 0, None)})
    built = cuda_stubs.build_stub(lib, tmp_path / "out", tmp_path / "work")
    fn = ctypes.CDLL(str(built)).cudaGetErrorString
    fn.restype = ctypes.c_char_p
    assert b"CPU build" in fn(700)
