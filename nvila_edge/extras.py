"""Which optional extra of the package brings a Python module, read from the installed package's own
requirements (pyproject's optional-dependencies), so a missing module is one line with the install command."""

from __future__ import annotations

import importlib.metadata
import re

# Import names that differ from their distribution names.
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "cuda": "cuda-python",
    "modelopt": "nvidia-modelopt",
    "onnx_graphsurgeon": "onnx-graphsurgeon",
    "onnxruntime_genai": "onnxruntime-genai",
    "tensorrt_rtx_bindings": "tensorrt-rtx-cu12-bindings",
    "PIL": "pillow",
}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+).*?extra\s*==\s*['\"]([^'\"]+)['\"]")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_for(module: str) -> tuple[str, str] | None:
    """-> (distribution, the first extra that lists it) for a module name, or None when no extra brings it."""
    top = module.split(".")[0]
    wanted = _canonical(DISTRIBUTIONS.get(top, top))
    if wanted == "nvila-edge":  # the package itself is never an optional module (extras list it as nvila-edge[..])
        return None
    try:
        requirements = importlib.metadata.requires("nvila-edge") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if match and _canonical(match.group(1)) == wanted:
            return DISTRIBUTIONS.get(top, top), match.group(2)
    return None


def missing_module_message(err: ModuleNotFoundError) -> str | None:
    """The one line for an optional module that is not installed; None for anything else (a real bug)."""
    found = extra_for(err.name or "")
    if found is None:
        return None
    distribution, extra = found
    return (f"this command needs {distribution} (Python module '{err.name.split('.')[0]}'), which is not installed; "
            f"pip install 'nvila-edge[{extra}]'")
