from __future__ import annotations

import argparse

from nvila_edge.options import POSITIVE


class ExportCommand:
    """Export a checkpoint to portable ONNX: vision.onnx, projector.onnx (Dynamic-S2 merge + projector),
    llm.onnx (inputs_embeds + KV cache, one graph for prefill and decode), the embedding table, the
    tokenizer and manifest.json.

    The same folder goes to TensorRT on a device (`nvila-edge build`) and to ONNX Runtime anywhere
    (`nvila-edge run`). Every graph passes strict ONNX shape inference, the checker and the TensorRT
    compatibility check (`nvila-edge check`) against the oldest TensorRT the export is meant for: the
    --target's, else TensorRT 10.3 (JetPack 6) for every recipe but fp8 (TensorRT 10.13, JetPack 7 on Thor).
    Quantized recipes calibrate on the built-in world's images and questions, or on --calib DIR.
    The folder is written under a temporary name and renamed at the end.

    examples:
      nvila-edge export builtin -o out/builtin-fp32
      nvila-edge export ./NVILA-Lite-2B -o out/lite2b-int4 --precision int4 --target orin-nano-8gb
      nvila-edge export ./NVILA-8B -o out/8b-w8a16 --precision int8-int4 --calib ./my_photos --calib-size 64
    """

    name = "export"
    help = "export a checkpoint to ONNX + manifest, optionally quantized (needs the export extra)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nvila_edge.engines.recipes import DEFAULT_CALIBRATION_SIZE, RECIPES

        recipes = "\n".join(f"  {r.name:<10} {r.summary}" for r in RECIPES.values())
        parser.epilog = (f"precision recipes (--precision):\n{recipes}\nThe embedding table and the projector stay "
                         "FP16; lm_head stays FP16 unless --quantize-lm-head.")
        parser.add_argument("model", help="checkpoint folder or 'builtin'")
        parser.add_argument("-o", "--out", required=True, help="export folder to create")
        parser.add_argument("--precision", "--recipe", dest="precision", default=None, choices=tuple(RECIPES),
                            help="precision recipe (default: the --target's default recipe, else fp32; see below)")
        parser.add_argument("--target", default=None,
                            help="device target the export is for (e.g. orin-nano-8gb, thor; see engines/targets.py): "
                                 "refuses recipes it cannot run (fp8 on Orin) and checks the graphs against its "
                                 "oldest TensorRT (default: none, no refusal)")
        parser.add_argument("--calib", type=str, default=None, metavar="DIR",
                            help="folder of your own calibration images (default: the built-in world's images)")
        parser.add_argument("--calib-size", type=POSITIVE, default=DEFAULT_CALIBRATION_SIZE, metavar="N",
                            help=f"calibration images / prompts (default {DEFAULT_CALIBRATION_SIZE})")
        parser.add_argument("--quantize-lm-head", action="store_true",
                            help="quantize lm_head too (int4 / fp8); saves memory on large vocabularies")
        parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
        parser.add_argument("--quiet", "-q", action="store_true",
                            help="no progress bar and no summary line, only errors (bars are off anyway when stderr "
                                 "is not a terminal)")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from nvila_edge.engines.targets import check_recipe, get_target
        from nvila_edge.errors import InputError

        out = Path(args.out)
        if out.exists() and not args.force:
            raise InputError(f"{out} already exists; pass --force to replace it")
        target = get_target(args.target) if args.target else None
        precision = args.precision or (target.default_recipe if target else "fp32")
        if target:
            check_recipe(target, precision)  # refuse before the slow imports

        from nvila_edge.export.exporter import export_checkpoint

        manifest = export_checkpoint(args.model, out, precision, replace=args.force,
                                     calib_dir=Path(args.calib) if args.calib else None, calib_size=args.calib_size,
                                     target=args.target, quantize_lm_head=args.quantize_lm_head,
                                     progress=not args.quiet)
        if args.quiet:
            return 0
        sizes = {name: (out / g.file).stat().st_size + sum((out / f).stat().st_size for f in g.external_data)
                 for name, g in manifest.graphs.items()}
        print(f"exported {manifest.source['name']} ({precision}) to {out}: "
              + ", ".join(f"{n}.onnx {manifest.graphs[n].precision} {s / 2**20:.1f} MiB" for n, s in sizes.items())
              + f"; passes the TensorRT check for {manifest.source['tensorrt_check']}")
        return 0
