from __future__ import annotations

import argparse


class DoctorCommand:
    """Check this machine for what building, running and the camera demo need, with the fix for each gap.

    Checks: device and JetPack / TensorRT release, Python, TensorRT (or TensorRT-RTX), cuda-python / pycuda,
    OpenCV with GStreamer, ONNX Runtime providers, cameras and the Argus daemon, power mode, memory and swap,
    disk space for the engine cache. Off a Jetson it says so and checks what applies to the target.

    exit status:
      0  nothing the requested action needs is missing (without --for: no check failed)
      1  something the requested action needs is missing (the FAIL rows say what and how to fix it)
      2  bad command line

    examples:
      nvila-edge doctor
      nvila-edge doctor --for demo
      nvila-edge doctor --for build --target orin-nano-8gb
    """

    name = "doctor"
    help = "check the machine for build / demo / run and print the fix for each problem"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--for", dest="action", choices=("build", "demo", "run"),
                            help="judge the checks for this action only, others show as warnings (default: all three)")
        parser.add_argument("--target", default="auto",
                            help="target record to check for (default: auto = detect this machine)")
        parser.add_argument("--root", default="/",
                            help="read /proc, /etc, /dev, /var from this folder instead of / (default: /)")
        parser.add_argument("--cache-dir", default=None,
                            help="engine cache folder to check for free space "
                                 "(default: $NVILA_EDGE_CACHE or ~/.cache/nvila-edge)")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from nvila_edge.engines.targets import get_target
        from nvila_edge.jetson.device import detect_target
        from nvila_edge.jetson.doctor import exit_code, render_table, run_checks
        from nvila_edge.jetson.host_facts import gather_facts

        root = Path(args.root)
        if args.target == "auto":
            target, reason = detect_target(root)
        else:
            target, reason = get_target(args.target), "chosen with --target"
        facts = gather_facts(root, Path(args.cache_dir) if args.cache_dir else None)
        checks = run_checks(facts, target, reason)
        print(f"nvila-edge doctor: target {target.name}, checking for {args.action or 'build, demo and run'}")
        print(render_table(checks, args.action))
        return exit_code(checks, args.action)
