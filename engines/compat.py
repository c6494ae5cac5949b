"""Will TensorRT parse this ONNX graph? A static check per TensorRT version (and GPU), without TensorRT.

The rules are the onnx-tensorrt operator table (docs/operators.md, TensorRT 10.x) and TensorRT's explicit
quantization rules: standard ONNX domains only, no op TensorRT lacks (or lacks in that version), opset
within the parser's range, and Q/DQ that TensorRT runs natively: constant all-zero zero points (symmetric),
INT8 / FP8 / INT4 / FP4 types, INT4 only on weights (W4A16), FP8/FP4 only on GPUs that have them.
Errors break the engine build; warnings are legal but need confirming on the device.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from nvila_edge.errors import ArtifactError, UnsupportedError

# Oldest TensorRT per device family: JetPack 6.x ships 10.3 (Orin), JetPack 7.0 ships 10.13 (Thor).
JETPACK_TRT = {"jetpack6": (10, 3), "jetpack7": (10, 13), "jetpack7.0": (10, 13), "jetpack7.2": (10, 16)}
DEVICE_FAMILY_TRT = {"orin-": (10, 3), "thor": (10, 13)}
DEFAULT_TRT = (10, 3)  # GPU targets of unknown TensorRT: the oldest this toolchain supports

STANDARD_DOMAINS = ("", "ai.onnx")
NEVER_PARSED = {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "QLinearConv", "ConvInteger", "Unique",
                "SplitToSequence", "ConcatFromSequence", "BitShift", "Compress", "Det", "AffineGrid", "Col2Im", "DFT",
                "CenterCropPad", "ImageDecoder", "StringNormalizer", "StringConcat", "StringSplit", "RegexFullMatch"}
NEVER_PARSED_PREFIXES = ("Sequence", "Optional", "Bitwise")
# op -> first TensorRT version allowed to have it: the opset-23/24 ops are in the 10.15 parser table; the
# opset-20 Gelu op is kept out of JetPack 6 graphs (GELU stays decomposed in opset <= 19 exports)
FIRST_TRT = {"RMSNormalization": (10, 15), "RotaryEmbedding": (10, 15), "Attention": (10, 15),
             "TensorScatter": (10, 15), "Gelu": (10, 13)}
QDQ_TYPES = {TensorProto.INT8: "INT8", TensorProto.FLOAT8E4M3FN: "FP8 E4M3", TensorProto.INT4: "INT4",
             TensorProto.FLOAT4E2M1: "FP4 E2M1"}
FP8_MIN_CAPABILITY = (8, 9)
FP4_MIN_CAPABILITY = (10, 0)
UNSUPPORTED_TENSOR_TYPES = {TensorProto.STRING, TensorProto.COMPLEX64, TensorProto.COMPLEX128, TensorProto.UINT16,
                            TensorProto.UINT32, TensorProto.UINT64}


@dataclass(frozen=True)
class CompatTarget:
    label: str
    trt: tuple[int, int]
    capability: tuple[int, int] | None = None  # None: the GPU is unknown, only parser rules apply

    @property
    def trt_name(self) -> str:
        return f"TensorRT {self.trt[0]}.{self.trt[1]}"

    @property
    def max_opset(self) -> int:
        # 10.15+ parse opset 24 (Attention, TensorScatter); older 10.x document 9-20, and need 21 for blocked INT4
        return 24 if self.trt >= (10, 15) else 21


@dataclass
class Finding:
    file: str
    node: str
    op: str
    message: str
    severity: str = "error"

    def line(self) -> str:
        where = f"{self.file}: " if self.file else ""
        node = f"node '{self.node}' ({self.op}): " if self.node else ""
        return f"{self.severity.upper()} {where}{node}{self.message}"


def parse_version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(text)
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def parse_target(spec: str) -> CompatTarget:
    """A TensorRT version ("10.3", "11.4"), a JetPack ("jetpack6", "jetpack7.2") or a device target
    ("orin-nano-8gb")."""
    from nvila_edge.engines.targets import TARGETS

    name = spec.strip().lower()
    if name in JETPACK_TRT:
        return CompatTarget(spec, JETPACK_TRT[name])
    if name in TARGETS:
        record = TARGETS[name]
        if record.default_backend == "onnxruntime":
            raise UnsupportedError(f"target '{spec}' runs ONNX Runtime, not TensorRT; check against a TensorRT "
                                   "version (10.3, 10.13, 11.4), a JetPack (jetpack6) or a GPU target instead")
        trt = next((v for prefix, v in DEVICE_FAMILY_TRT.items() if name.startswith(prefix)), DEFAULT_TRT)
        return CompatTarget(spec, trt, record.compute_capability)
    try:
        return CompatTarget(spec, parse_version(name))
    except ValueError:
        raise UnsupportedError(f"unknown check target '{spec}': give a TensorRT version (10.3, 10.13, 11.4), a JetPack "
                               f"({', '.join(JETPACK_TRT)}) or a device target ({', '.join(TARGETS)})") from None


def constant_tensors(graph: onnx.GraphProto) -> dict[str, TensorProto]:
    """Initializers and Constant outputs by name (read into arrays only where a rule needs the values)."""
    tensors = {t.name: t for t in graph.initializer}
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None:
            tensors[node.output[0]] = value
    return tensors


def values_of(tensor: TensorProto) -> np.ndarray | None:
    """The tensor's values, or None when they live in an external data file that was not loaded."""
    return None if tensor.data_location == TensorProto.EXTERNAL else numpy_helper.to_array(tensor)


def attribute(node: onnx.NodeProto, name: str, default=None):
    attr = next((a for a in node.attribute if a.name == name), None)
    return onnx.helper.get_attribute_value(attr) if attr is not None else default


class GraphChecker:
    def __init__(self, model: onnx.ModelProto, target: CompatTarget, file: str):
        self.target, self.file = target, file
        self.findings: list[Finding] = []
        inferred = onnx.shape_inference.infer_shapes(model)
        self.types = {v.name: v.type.tensor_type.elem_type
                      for v in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]}
        self.types.update({t.name: t.data_type for t in model.graph.initializer})
        self.model = model

    def report(self, node: onnx.NodeProto | None, message: str, severity: str = "error") -> None:
        name, op = (node.name, node.op_type) if node else ("", "")
        self.findings.append(Finding(self.file, name, op, message, severity))

    def run(self) -> list[Finding]:
        self.check_opset()
        self.check_io_types()
        self.check_graph(self.model.graph)
        return self.findings

    def check_opset(self) -> None:
        opset = next((o.version for o in self.model.opset_import if o.domain in STANDARD_DOMAINS), None)
        if opset is None:
            return
        if opset > self.target.max_opset:
            self.report(None, f"opset {opset} is newer than {self.target.trt_name}'s ONNX parser "
                              f"(up to {self.target.max_opset})")
        elif opset == 21 and self.target.trt < (10, 15):
            self.report(None, "opset 21 (blocked INT4 DequantizeLinear and FP8 Transpose need it) is past the range "
                              f"TensorRT 10.0 documents (9-20); confirm that {self.target.trt_name} builds it on the "
                              "device", "warning")

    def check_io_types(self) -> None:
        for value in [*self.model.graph.input, *self.model.graph.output]:
            elem = value.type.tensor_type.elem_type
            if elem in UNSUPPORTED_TENSOR_TYPES:
                self.report(None, f"graph I/O '{value.name}' has type {TensorProto.DataType.Name(elem)}, "
                                  "which TensorRT has no tensors for")
            elif elem == TensorProto.DOUBLE:
                self.report(None, f"graph I/O '{value.name}' is DOUBLE; TensorRT casts it to FP32", "warning")

    def check_graph(self, graph: onnx.GraphProto) -> None:
        constants = constant_tensors(graph)
        for node in graph.node:
            self.check_node(node, constants)
            for attr in node.attribute:  # If / Loop / Scan bodies
                for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                    self.check_graph(sub)

    def check_node(self, node: onnx.NodeProto, constants: dict) -> None:
        op = node.op_type
        if node.domain not in STANDARD_DOMAINS:
            kind = ("an ONNX Runtime contrib op" if node.domain == "com.microsoft"
                    else f"a custom op of domain '{node.domain}'")
            self.report(node, f"{kind}: TensorRT parses standard ONNX ops only (it would need a plugin named {op})")
            return
        if op in NEVER_PARSED or op.startswith(NEVER_PARSED_PREFIXES):
            self.report(node, f"{op} is not supported by TensorRT's ONNX parser")
        elif op in FIRST_TRT and self.target.trt < FIRST_TRT[op]:
            first = ".".join(map(str, FIRST_TRT[op]))
            self.report(node, f"{op} is not in {self.target.trt_name}'s ONNX parser (allowed from TensorRT {first})")
        elif op in ("QuantizeLinear", "DequantizeLinear"):
            self.check_qdq(node, constants)
        else:
            self.check_op_rules(node, constants)

    def check_op_rules(self, node: onnx.NodeProto, constants: dict) -> None:
        op = node.op_type
        if op == "ScatterND" and attribute(node, "reduction", b"none") not in (b"none", "none"):
            self.report(node, "ScatterND with a reduction; TensorRT supports reduction='none' only")
        elif op == "TopK":
            k = values_of(constants[node.input[1]]) if len(node.input) > 1 and node.input[1] in constants else None
            if attribute(node, "sorted", 1) != 1:
                self.report(node, "TopK with sorted=0; TensorRT requires sorted output")
            if k is not None and int(np.max(k)) >= 3840:
                self.report(node, f"TopK with K={int(np.max(k))}; TensorRT requires K < 3840")
        elif op == "Resize" and attribute(node, "antialias", 0):
            self.report(node, "Resize with antialias=1 is not supported by TensorRT")
        elif op == "NonZero":
            self.report(node, "NonZero has a data-dependent output shape; slow and fragile in TensorRT", "warning")
        elif op == "CumSum" and node.input[1] not in constants:
            self.report(node, "CumSum axis must be a build-time constant in TensorRT")
        elif (op in ("Squeeze", "Unsqueeze") and len(node.input) > 1 and node.input[1]
              and node.input[1] not in constants):
            self.report(node, f"{op} axes must be a build-time constant in TensorRT")

    def check_qdq(self, node: onnx.NodeProto, constants: dict) -> None:
        zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if zero_point is not None:
            if zero_point not in constants:
                self.report(node, "zero point computed at run time; TensorRT needs a constant zero point")
            elif (zeros := values_of(constants[zero_point])) is not None and np.any(zeros.astype(np.float32) != 0):
                self.report(node, "non-zero zero point (asymmetric quantization); TensorRT runs symmetric Q/DQ only")
        qtype = self.quantized_type(node, zero_point)
        if qtype not in QDQ_TYPES:
            name = TensorProto.DataType.Name(qtype) if qtype else "an unknown type"
            self.report(node, f"quantizes to {name}; TensorRT's Q/DQ types are {', '.join(QDQ_TYPES.values())}")
            return
        if qtype == TensorProto.INT4:
            weight = node.op_type == "DequantizeLinear" and node.input[0] in constants
            if not weight:
                self.report(node, "INT4 on a run-time tensor (an activation); TensorRT takes INT4 as weight-only "
                                  "(an INT4 initializer behind DequantizeLinear)")
        if attribute(node, "block_size", 0) and qtype not in (TensorProto.INT4, TensorProto.FLOAT4E2M1):
            self.report(node, f"blocked {QDQ_TYPES[qtype]} quantization; TensorRT blocks INT4 and FP4 only")
        capability = self.target.capability
        for kind, first, types in (("FP8", FP8_MIN_CAPABILITY, (TensorProto.FLOAT8E4M3FN,)),
                                   ("FP4", FP4_MIN_CAPABILITY, (TensorProto.FLOAT4E2M1,))):
            if capability is not None and qtype in types and capability < first:
                self.report(node, f"{kind} needs compute capability {first[0]}.{first[1]} or newer; target "
                                  f"'{self.target.label}' is {capability[0]}.{capability[1]}")

    def quantized_type(self, node: onnx.NodeProto, zero_point: str | None) -> int:
        if node.op_type == "DequantizeLinear":
            return self.types.get(node.input[0], 0)
        output_dtype = attribute(node, "output_dtype", 0)
        if output_dtype:
            return output_dtype
        # without a zero point or output_dtype, QuantizeLinear produces UINT8
        return self.types.get(zero_point, 0) if zero_point else TensorProto.UINT8


def check_model(model: onnx.ModelProto, target: CompatTarget, file: str = "") -> list[Finding]:
    return GraphChecker(model, target, file).run()


def check_file(path: Path, target: CompatTarget) -> list[Finding]:
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises its own DecodeError types
        raise ArtifactError(f"{path}: not a readable ONNX file ({err})") from None
    return check_model(model, target, path.name)


def graph_files(path: Path) -> list[Path]:
    """The graphs of an export folder (from its manifest), every .onnx in another folder, or one file."""
    from nvila_edge.runtime.manifest import MANIFEST, read_manifest

    path = Path(path)
    if path.is_file():
        return [path]
    if (path / MANIFEST).is_file():
        return [path / g.file for g in read_manifest(path).graphs.values() if g.file.endswith(".onnx")]
    files = sorted(path.glob("*.onnx"))
    if not files:
        raise ArtifactError(f"{path}: no ONNX graphs to check (expected an export folder or .onnx files)")
    return files


def check_path(path: Path, target: CompatTarget) -> list[Finding]:
    return [finding for file in graph_files(path) for finding in check_file(file, target)]


def summary_lines(findings: list[Finding]) -> list[str]:
    """One line per distinct problem and file; a problem on many nodes names the count and the first node."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.severity, finding.file, finding.message), []).append(finding)
    lines = []
    for (severity, file, message), group in groups.items():
        if len(group) == 1:
            lines.append(group[0].line())
            continue
        ops = ", ".join(sorted({f.op for f in group}))
        lines.append(f"{severity.upper()} {file}: {len(group)} nodes ({ops}; first '{group[0].node}'): {message}")
    return lines


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def findings_json(findings: list[Finding], target: CompatTarget) -> str:
    return json.dumps({"target": target.label, "tensorrt": ".".join(map(str, target.trt)),
                       "errors": len(errors(findings)), "findings": [asdict(f) for f in findings]}, indent=2)
