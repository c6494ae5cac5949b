from __future__ import annotations

import argparse


class ExportCommand:
    """Export a checkpoint to portable ONNX: vision.onnx, projector.onnx (Dynamic-S2 merge + projector),
    llm.onnx (inputs_embeds + KV cache, one graph for prefill and decode), the embedding table, the
    tokenizer and manifest.json.

    The same folder goes to TensorRT on a device (`nvila-edge build`) and to ONNX Runtime anywhere
    (`nvila-edge run`). Every graph passes strict ONNX shape inference and the checker. The folder is
    written under a temporary name and renamed at the end.

    examples:
      nvila-edge export builtin -o out/builtin-fp32
      nvila-edge export ./NVILA-Lite-2B -o out/lite2b --precision fp16
    """

    name = "export"
    help = "export a checkpoint to ONNX + manifest (needs the export extra)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="checkpoint folder or 'builtin'")
        parser.add_argument("-o", "--out", required=True, help="export folder to create")
        parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                            help="graph precision (default fp32)")
        parser.add_argument("--force", action="store_true", help="replace OUT if it exists")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from nvila_edge.errors import InputError
        from nvila_edge.export.exporter import export_checkpoint

        out = Path(args.out)
        if out.exists() and not args.force:
            raise InputError(f"{out} already exists; pass --force to replace it")
        manifest = export_checkpoint(args.model, out, args.precision, replace=args.force)
        sizes = {name: (out / g.file).stat().st_size + sum((out / f).stat().st_size for f in g.external_data)
                 for name, g in manifest.graphs.items()}
        print(f"exported {manifest.source['name']} ({args.precision}) to {out}: "
              + ", ".join(f"{n}.onnx {s / 2**20:.1f} MiB" for n, s in sizes.items()))
        return 0
