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
EM_CUDA = 190  # ELF machine type of a CUDA device binary


@pytest.mark.parametrize("arch", ARCHES)
def test_cuda_kernels_compile(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("no nvcc on this machine: the CUDA kernels are compiled where the CUDA toolkit is installed")
    cubin = tmp_path / f"preprocess.sm_{arch}.cubin"
    done = subprocess.run([nvcc, "-std=c++17", "-O2", "--fmad=false", f"-arch=sm_{arch}", "-cubin",
                           "-I", str(NATIVE / "include"), str(NATIVE / "src" / "cuda.cu"), "-o", str(cubin)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    image = cubin.read_bytes()
    assert image[:4] == b"\x7fELF" and int.from_bytes(image[18:20], "little") == EM_CUDA
    for kernel in (b"horizontal_pass", b"vertical_pass_to_tiles"):  # both kernels, FP32 and FP16 stores
        assert kernel in image
