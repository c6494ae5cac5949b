from __future__ import annotations

import argparse


class CheckCommand:
    """Check ONNX graphs for TensorRT compatibility without TensorRT: standard ops only, ops the TensorRT
    version has, opset in its parser's range, symmetric Q/DQ (zero zero-points) of INT8 / FP8 / INT4 / FP4,
    INT4 on weights only, FP8 / FP4 only on GPUs that have them.

    PATH is an export folder (its manifest's graphs), a folder of .onnx files, or one .onnx file. Prints
    each problem with the node and the reason; exits 1 when anything would break the engine build
    (warnings alone exit 0).

    examples:
      nvila-edge check out/builtin-int4 --target 10.3
      nvila-edge check out/builtin-fp8 --target orin-nano-8gb
      nvila-edge check out/builtin-fp16/llm.onnx --target jetpack7.2 --json
    """

    name = "check"
    help = "check ONNX graphs against a TensorRT version / device (exit 1 on problems)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", help="export folder, folder of .onnx files, or one .onnx file")
        parser.add_argument("--target", default="10.3",
                            help="TensorRT version (10.3, 10.13, 10.16, 11.4), JetPack (jetpack6, jetpack7.0, "
                                 "jetpack7.2) or device target (orin-nano-8gb, thor, ...); default 10.3, "
                                 "the oldest (JetPack 6)")
        parser.add_argument("--json", action="store_true", help="print the findings as JSON")

    def run(self, args: argparse.Namespace) -> int:
        from nvila_edge.engines.compat import (
            check_path,
            errors,
            findings_json,
            graph_files,
            parse_target,
            summary_lines,
        )

        target = parse_target(args.target)
        findings = check_path(args.path, target)
        broken = errors(findings)
        if args.json:
            print(findings_json(findings, target))
        else:
            for line in summary_lines(findings):
                print(line)
            count = len(graph_files(args.path))
            verdict = f"{len(broken)} problem(s)" if broken else "no problems"
            print(f"{count} graph(s) checked against {target.trt_name} ({target.label}): {verdict}"
                  + (f", {len(findings) - len(broken)} warning(s)" if len(findings) > len(broken) else ""))
        return 1 if broken else 0
