"""The runtime runs where torch, transformers, modelopt and the web stack cannot be imported (a Jetson with
TensorRT only)."""

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import nvila_edge.jetson
import nvila_edge.runtime

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers", "modelopt",  # nor the service's web stack:
                                      "starlette", "uvicorn", "sse_starlette", "prometheus_client"):
                raise ImportError(f"{name} is blocked: the runtime must not need it")
    sys.meta_path.insert(0, Block())
""")


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)


def module_names(package) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_blocker_really_blocks():
    result = run_blocked("import torch")
    assert result.returncode != 0 and "blocked" in result.stderr


@pytest.mark.parametrize("package", [nvila_edge.runtime, nvila_edge.jetson], ids=["runtime", "jetson"])
def test_every_module_imports_without_torch(package):
    names = [n for n in module_names(package) if not n.endswith(".tensorrt")]  # needs TensorRT itself
    result = run_blocked(f"""
        import importlib
        for name in {names!r}:
            importlib.import_module(name)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pipeline_answers_without_torch(tiny_checkpoint, tmp_path):
    from nvila_edge.export.exporter import export_checkpoint

    out = tmp_path / "export"
    export_checkpoint(tiny_checkpoint, out)
    result = run_blocked(f"""
        import json
        import numpy as np
        from nvila_edge.runtime.pipeline import Pipeline
        from nvila_edge.runtime.request import Request
        from nvila_edge.runtime.sampling import SamplingParams
        pipeline = Pipeline.open({str(out)!r}, threads=1)
        image = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
        answer = pipeline.ask(Request("Describe the image.", images=[image]), SamplingParams(max_new_tokens=5))
        print(json.dumps({{"tokens": len(answer.token_ids), "visual": answer.visual_tokens}}))
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["visual"] > 0
