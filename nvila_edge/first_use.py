"""First use of a checkpoint: the folder the demo runs is ``--engines DIR`` as given, or a checkpoint
(``builtin`` by default) exported once and built for the CPU (ONNX Runtime's saved optimized models), both kept
in the engine cache under a name that carries the checkpoint's content hash, so a changed model is exported
again and an unchanged one is reused. The build step is ``nvila-edge build --target cpu``'s own, so its engine
cache is shared with it. It lives in ``nvila_edge/``, not ``jetson/``, because it uses every stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nvila_edge.engines.cache import engine_cache_dir
from nvila_edge.errors import UnsupportedError
from nvila_edge.runtime.builtin import resolve_model
from nvila_edge.runtime.manifest import MANIFEST, folder_sha256, read_manifest

EXPORTS = "exports"  # cache sub-folder of first-use exports
CPU_BUILDS = "cpu"  # cache sub-folder of the engines folders built from them


@dataclass(frozen=True)
class CachedModel:
    export_dir: Path
    engines_dir: Path

    @classmethod
    def of(cls, checkpoint: Path, cache_dir: Path) -> CachedModel:
        name = f"{checkpoint.name}-{folder_sha256(checkpoint)[:16]}"
        return cls(Path(cache_dir) / EXPORTS / name, Path(cache_dir) / CPU_BUILDS / name)


def demo_model_folder(engines: Path | None, model: str, cache_dir: Path | None,
                      report: Callable[[str], None]) -> Path:
    """An export or engines folder to open; ``report`` hears where it comes from and what was done for it."""
    if engines is not None:
        read_manifest(Path(engines), verify_hashes=True)
        report(f"model: {engines}")
        return Path(engines)
    checkpoint = resolve_model(model)
    if (checkpoint / MANIFEST).is_file():  # already an export or engines folder
        read_manifest(checkpoint, verify_hashes=True)
        report(f"model: {checkpoint}")
        return checkpoint
    cache_dir = Path(cache_dir or engine_cache_dir())
    cached = CachedModel.of(checkpoint, cache_dir)
    if not (cached.export_dir / MANIFEST).is_file():
        report(f"model: {model}, exporting it once into {cached.export_dir} (later runs reuse it)")
        export_once(checkpoint, cached.export_dir)
    if build_for_cpu(cached.export_dir, cached.engines_dir, cache_dir):
        report(f"model: {model}, built for the CPU into {cached.engines_dir}")
    else:
        report(f"model: {model}, using the cached CPU build {cached.engines_dir}")
    return cached.engines_dir


def export_once(checkpoint: Path, target: Path) -> None:
    try:
        from nvila_edge.export.exporter import export_checkpoint
    except ImportError as err:
        raise UnsupportedError(f"exporting {checkpoint.name} needs the export extra ({err.name} is missing): pip "
                               "install 'nvila-edge[export]' once, or pass an exported folder with --engines DIR"
                               ) from None
    try:
        export_checkpoint(checkpoint, target)
    except FileExistsError:
        if not (target / MANIFEST).is_file():  # unless another demo finished the same export first
            raise


def build_for_cpu(export_dir: Path, engines_dir: Path, cache_dir: Path) -> bool:
    """Build (or bring up to date, e.g. after an ONNX Runtime upgrade) the CPU engines; True when it built."""
    from nvila_edge.engines.build import build_engines, plan_build
    from nvila_edge.engines.cache import EngineCache
    from nvila_edge.engines.targets import get_target

    plan = plan_build(export_dir, get_target("cpu"), "onnxruntime")
    return not build_engines(plan, engines_dir, EngineCache(cache_dir), progress=False).up_to_date
