"""Safetensors weight folders: index, lazy shape checks, loading and sharded writing.

Only safetensors is read (never pickle). Shapes are checked from file headers before any tensor is loaded,
so a wrong folder fails in milliseconds with the tensor named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nvila_edge.errors import CheckpointError

INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorEntry:
    file: Path
    shape: tuple[int, ...]


def weight_files(folder: Path) -> list[Path]:
    index = folder / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise CheckpointError(f"{index}: not a safetensors index ({err})") from None
        files = sorted({folder / name for name in weight_map.values()})
        for file in files:
            if not file.is_file():
                raise CheckpointError(f"{folder}: missing weight shard '{file.name}' listed in {INDEX_NAME}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no weights (expected model.safetensors or a sharded {INDEX_NAME})")
    return files


def tensor_index(folder: Path) -> dict[str, TensorEntry]:
    index: dict[str, TensorEntry] = {}
    for file in weight_files(folder):
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    index[name] = TensorEntry(file, tuple(f.get_slice(name).get_shape()))
        except Exception as err:  # safetensors raises its own error types for truncated/corrupt headers
            raise CheckpointError(f"{file}: unreadable safetensors file ({err})") from None
    return index


def check_shapes(index: dict[str, TensorEntry], expected: dict[str, tuple[int, ...]], folder: Path,
                 optional: Iterable[str] = ()) -> None:
    optional = set(optional)
    for name, shape in expected.items():
        entry = index.get(name)
        if entry is None:
            if name in optional:
                continue
            raise CheckpointError(f"{folder}: missing tensor '{name}' (expected shape {list(shape)})")
        if entry.shape != tuple(shape):
            raise CheckpointError(f"{entry.file}: tensor '{name}' has shape {list(entry.shape)} but the config "
                                  f"implies {list(shape)}")


def load_tensors(index: dict[str, TensorEntry], names: Iterable[str], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(index[name].file, []).append(name)
    out = {}
    for file, file_names in by_file.items():
        with safe_open(str(file), framework="pt") as f:
            for name in file_names:
                out[name] = f.get_tensor(name).to(dtype)
    return out


def plan_shards(shapes: dict[str, tuple[int, ...]], bytes_per_element: int, max_shard_bytes: int) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = bytes_per_element * int(torch.Size(shape).numel())
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def write_sharded(folder: Path, shapes: dict[str, tuple[int, ...]], make_tensor, dtype: torch.dtype,
                  max_shard_bytes: int) -> None:
    """Write tensors shard by shard: only one shard's tensors are alive at a time.

    ``make_tensor(name, shape)`` returns the tensor; one shard gives ``model.safetensors``, several give
    ``model-0000i-of-0000n.safetensors`` plus the index, as published checkpoints do.
    """
    element = torch.empty((), dtype=dtype).element_size()
    shards = plan_shards(shapes, element, max_shard_bytes)
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map, total = {}, 0
    for file_name, shard in zip(names, shards):
        tensors = {name: make_tensor(name, shapes[name]).to(dtype).contiguous() for name in shard}
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        save_file(tensors, str(folder / file_name), metadata={"format": "pt"})
        weight_map.update({name: file_name for name in shard})
        del tensors
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / INDEX_NAME).write_text(json.dumps(index, indent=2))


def iter_state(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Named tensors of a module, tied weights once (safetensors refuses shared storage)."""
    seen = set()
    for name, tensor in module.state_dict().items():
        if tensor.data_ptr() in seen and tensor.device.type != "meta":
            continue
        seen.add(tensor.data_ptr())
        yield name, tensor

