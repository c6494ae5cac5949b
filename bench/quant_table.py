"""Accuracy and size of every precision recipe on one model, through the runtime on ONNX Runtime (CPU).

Each recipe is exported (``nvila-edge export MODEL --precision R``) and scored on the ``shapes`` suite
exactly as ``nvila-edge eval EXPORT_DIR --n N --seed S`` does, with the same seed for all. Sizes are the
files of each export folder and the bytes of the LLM's linear-layer weights (lm_head aside), compared with
FP32. Prints one JSON document; ``--markdown FILE`` also writes the tables of docs/recipes.md. Needs the export extra.

    nice -n 19 python bench/quant_table.py builtin --work out/quant --n 200 --seed 1234 --markdown out/quant/table.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nvila_edge.engines.recipes import DEFAULT_CALIBRATION_SIZE, GRAPHS, RECIPES


def exported_from(model: str, out: Path) -> bool:
    """True when ``out`` holds an export of the model's current weights (a retrained model is re-exported)."""
    from nvila_edge.runtime.builtin import resolve_model
    from nvila_edge.runtime.manifest import folder_sha256

    manifest = out / "manifest.json"
    if not manifest.is_file():
        return False
    return json.loads(manifest.read_text())["source"]["sha256"] == folder_sha256(resolve_model(model))


def export(model: str, out: Path, recipe: str, calib_size: int, rebuild: bool) -> float:
    from nvila_edge.export.exporter import export_checkpoint

    if not rebuild and exported_from(model, out):
        return 0.0
    start = time.perf_counter()
    export_checkpoint(model, out, recipe, replace=True, calib_size=calib_size)
    return time.perf_counter() - start


def score(folder: Path, n: int, seed: int, threads: int) -> dict:
    from nvila_edge.runtime.evaluation import evaluate
    from nvila_edge.runtime.pipeline import Pipeline

    pipeline = Pipeline.open(folder, threads=threads)
    start = time.perf_counter()
    result = evaluate(pipeline.answer_example, n=n, seed=seed)
    return {"accuracy": result["accuracy"], "families": result["families"],
            "eval_s": round(time.perf_counter() - start, 1)}


def sizes(folder: Path) -> dict:
    import onnx

    from nvila_edge.export.quantize.footprint import folder_sizes, linear_weight_bytes
    from nvila_edge.runtime.manifest import read_manifest

    manifest = read_manifest(folder)
    llm = onnx.load(str(folder / manifest.graphs["llm"].file), load_external_data=False)
    return {"files": folder_sizes(folder), "llm_linear_weight_bytes": linear_weight_bytes(llm),
            "graph_precisions": {name: g.precision for name, g in manifest.graphs.items()}}


def table(model: str, work: Path, recipes: list[str], n: int, seed: int, threads: int, calib_size: int,
          rebuild: bool) -> dict:
    rows = {}
    for recipe in recipes:
        folder = work / recipe
        export_s = export(model, folder, recipe, calib_size, rebuild)
        rows[recipe] = {"export_s": round(export_s, 1), **score(folder, n, seed, threads), **sizes(folder)}
        print(f"{recipe}: accuracy {rows[recipe]['accuracy']:.4f}", file=sys.stderr, flush=True)
    if "fp32" in rows:
        base = rows["fp32"]
        for recipe, row in rows.items():
            row["points_vs_fp32"] = round(100 * (row["accuracy"] - base["accuracy"]), 2)
            ratio = row["llm_linear_weight_bytes"] / base["llm_linear_weight_bytes"]
            row["llm_linear_weights_vs_fp32"] = round(ratio, 4)
            row["within_tolerance"] = row["points_vs_fp32"] >= -100 * RECIPES[recipe].accuracy_drop
    return {"model": model, "suite": "shapes", "n": n, "seed": seed, "recipes": rows}


def markdown(result: dict) -> str:
    rows = result["recipes"]
    lines = ["| recipe | vision / projector / LLM | accuracy | vs fp32 (points) |", "|---|---|---|---|"]
    for recipe, row in rows.items():
        graphs = " / ".join(row["graph_precisions"][g] for g in GRAPHS)
        lines.append(f"| `{recipe}` | {graphs} | {row['accuracy']:.3f} | {row.get('points_vs_fp32', 0):+.1f} |")
    lines += ["", "| recipe | vision.onnx | projector.onnx | llm.onnx | embeddings.npy | LLM linear weights vs fp32 |",
              "|---|---|---|---|---|---|"]
    for recipe, row in rows.items():
        files = row["files"]
        cells = [f"{files[f] / 2**20:.2f} MiB" for f in ("vision.onnx", "projector.onnx", "llm.onnx", "embeddings.npy")]
        lines.append(f"| `{recipe}` | " + " | ".join(cells) + f" | {row.get('llm_linear_weights_vs_fp32', 1):.3f} |")
    return "\n".join(lines)


def add_suite_arguments(parser: argparse.ArgumentParser, n: int, work_help: str) -> None:
    """The options of the accuracy benches (this one and ``cpu_engines_accuracy.py``): model, work folder,
    recipes, the suite's size and seed, threads and calibration size."""
    parser.add_argument("model", nargs="?", default="builtin", help="checkpoint folder or 'builtin'")
    parser.add_argument("--work", type=Path, default=Path("out/quant"), help=work_help)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipes")
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calib-size", type=int, default=DEFAULT_CALIBRATION_SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_suite_arguments(parser, n=200, work_help="where the exports go")
    parser.add_argument("--rebuild", action="store_true",
                        help="re-export folders that already hold an export of this model")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                        help="also write the tables of docs/recipes.md here")
    args = parser.parse_args()
    result = table(args.model, args.work, args.recipes.split(","), args.n, args.seed, args.threads, args.calib_size,
                   args.rebuild)
    print(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(result) + "\n")


if __name__ == "__main__":
    main()
