"""The CUDA preprocessing kernels compile with this machine's nvcc for Orin (sm_87) and Thor (sm_110).

No GPU is needed to compile; running them is device-only (``nvila-edge validate`` compares them with the
CPU tiles on a Jetson).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native"
ARCHES = ("87", "110")


def test_cuda_kernels_compile_for_orin_and_thor(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("no nvcc on this machine: the CUDA kernels are compiled where the CUDA toolkit is installed")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHES]
    obj = tmp_path / "cuda.o"
    done = subprocess.run([nvcc, "-std=c++17", "-O2", "--fmad=false", *gencode, "-I", str(NATIVE / "include"),
                           "-c", str(NATIVE / "src" / "cuda.cu"), "-o", str(obj)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    listing = subprocess.run([shutil.which("cuobjdump") or str(Path(nvcc).parent / "cuobjdump"), "--list-elf",
                              str(obj)], capture_output=True, text=True, check=True).stdout
    for arch in ARCHES:
        assert f"sm_{arch}" in listing
