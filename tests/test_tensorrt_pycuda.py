"""pycuda as the TensorRT backend's other CUDA binding: chosen when it is the one installed, driven from any
thread, reported by doctor, and the one-line fix when neither binding imports. (Parity, context limits and leak
checks run through both bindings in test_tensorrt_backend.py.)"""

import sys
import threading

import numpy as np
import pytest
from test_tensorrt_backend import image_file
from trt_emulator import Emulator, emulated_pycuda

from nvila_edge.cli import main
from nvila_edge.errors import UnsupportedError
from nvila_edge.jetson.host_facts import probe_module
from nvila_edge.runtime.backends.cuda_bindings import BINDINGS, binding
from nvila_edge.runtime.pipeline import Pipeline


@pytest.mark.parametrize("name", BINDINGS)
def test_the_installed_binding_is_the_one_used_and_the_one_doctor_sees(name, monkeypatch):
    Emulator().install(monkeypatch, binding=name)
    assert binding().name == name
    other = next(b for b in BINDINGS if b != name)
    assert probe_module(name).found and not probe_module(other).found


def test_pycuda_steps_from_a_worker_thread_in_the_primary_context(trt_engines, monkeypatch):
    """The demo opens the pipeline in the main thread and steps it in a worker; pycuda's driver calls need a
    current context on each thread."""
    emulated = Emulator()
    emulated.install(monkeypatch, binding="pycuda")
    rows = np.random.default_rng(0).standard_normal((5, 256)).astype(np.float16)
    results = []
    with Pipeline.open(trt_engines("fp16"), max_context=64) as pipeline:
        pipeline.decoder.reset()
        worker = threading.Thread(target=lambda: results.append(pipeline.decoder.step(rows)))
        worker.start()
        worker.join()
        assert len(results) == 1 and np.isfinite(results[0]).all()
    emulated.check_released()


def test_without_a_context_the_emulated_driver_refuses_like_pycuda(monkeypatch):
    Emulator().install(monkeypatch, binding="pycuda")
    with pytest.raises(emulated_pycuda.LogicError, match="invalid device context"):
        emulated_pycuda.mem_alloc(256)


def test_neither_binding_is_one_line_naming_both_packages(trt_engines, monkeypatch, tmp_path, capsys):
    Emulator().install(monkeypatch)
    for name in [*BINDINGS["cuda-python"], *BINDINGS["pycuda"], "pycuda"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UnsupportedError, match="neither cuda-python nor pycuda is installed; pip install "
                                               r"'nvila-edge\[jetson\]' .* or pip install pycuda"):
        binding()
    assert main(["run", str(trt_engines("fp16")), "--image", image_file(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cuda-python" in err and "pycuda" in err
