"""Where the built-in model lives, and how model arguments resolve (``builtin`` or a folder path)."""

from __future__ import annotations

from pathlib import Path

from nvila_edge.errors import CheckpointError

BUILTIN_NAME = "builtin"

def builtin_dir() -> Path:
    """The shipped checkpoint folder (inside the installed package)."""
    import nvila_edge

    return Path(nvila_edge.__file__).resolve().parent / "builtin" / "nvila-shapes"


def resolve_model(spec: str | Path) -> Path:
    """``builtin`` -> the shipped checkpoint; anything else must be an existing folder."""
    if str(spec) == BUILTIN_NAME:
        path = builtin_dir()
        if not (path / "config.json").is_file():
            raise CheckpointError(f"the built-in model is missing from {path}; reinstall nvila-edge, or rebuild "
                                  "it with: nvila-edge train-builtin")
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such folder "
                              "(pass an NVILA checkpoint folder, an export folder, or 'builtin')")
    return path
