"""The post-build guard against silent FP32 fallback.

A strongly typed network takes its low-precision types from the graph's Q/DQ nodes, yet a builder can still
fold a DequantizeLinear of constant weights into plain FP32/FP16 weights and build without a word. So the
network's Q/DQ layers are counted per type before the build, and the engine inspector's per-layer formats
(``Format/Datatype`` of inputs and outputs, ``Type`` of weights) afterwards: a type the graph asks for that no
engine layer carries fails the build.
"""

from __future__ import annotations

import json
import re

from nvila_edge.engines.recipes import QUANTIZED
from nvila_edge.errors import UnsupportedError

# Spellings in inspector strings: "Row major Int8 format", "Channel major INT8 format ...", "Row major linear
# FP8 format", "Int4", "Float8E4M3".
TYPE_WORDS = {"int8": r"int8", "int4": r"int4", "fp8": r"fp8|float8|e4m3"}


def network_quantized_layers(trt, network) -> dict[str, int]:
    """Q/DQ layers of a parsed network per low-precision type (the DQ input's or the Q output's type)."""
    kinds = {trt.LayerType.QUANTIZE: lambda layer: layer.get_output(0),
             trt.LayerType.DEQUANTIZE: lambda layer: layer.get_input(0)}
    counts: dict[str, int] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in kinds:
            name = kinds[layer.type](layer).dtype.name.lower()
            if name in QUANTIZED:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _type_strings(layer: dict) -> list[str]:
    strings = [str(t.get("Format/Datatype", "")) for t in layer.get("Inputs", []) + layer.get("Outputs", [])
               if isinstance(t, dict)]
    strings += [str(layer[k].get("Type", "")) for k in ("Weights", "Bias") if isinstance(layer.get(k), dict)]
    return strings


def engine_layer_types(information: str) -> dict[str, int]:
    """Engine layers per low-precision type they read, write or hold weights in (inspector JSON in)."""
    try:
        layers = json.loads(information).get("Layers", [])
    except (json.JSONDecodeError, AttributeError):
        raise UnsupportedError("the engine inspector returned no JSON layer information") from None
    counts: dict[str, int] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            continue  # LAYER_NAMES_ONLY verbosity lists bare names
        text = " ".join(_type_strings(layer)).lower()
        for name, words in TYPE_WORDS.items():
            if re.search(words, text):
                counts[name] = counts.get(name, 0) + 1
    return counts


def check_layer_precision(graph: str, expected: dict[str, int], found: dict[str, int]) -> str:
    """A one-line summary when every expected type runs somewhere; raises when one fell back entirely."""
    missing = [name for name, count in expected.items() if count and not found.get(name)]
    if missing:
        what = ", ".join(f"{expected[m]} {m.upper()} Q/DQ layers" for m in missing)
        types = "/".join(m.upper() for m in missing)
        raise UnsupportedError(f"{graph}: the graph has {what} but no engine layer runs {types}: the builder fell "
                               "back to FP32/FP16; this backend or GPU does not support the recipe")
    if not expected:
        return "passed: no Q/DQ layers in the graph"
    return "passed: " + ", ".join(f"{found[name]} {name.upper()} layers" for name in expected if expected[name])
