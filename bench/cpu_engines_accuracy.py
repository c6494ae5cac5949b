"""Accuracy of the cpu engines (``nvila-edge build --target cpu``) against the exports they come from.

For each recipe: export the model (as ``bench/quant_table.py`` does, reused when current), build cpu engines
with each variant of the build options (``--accuracy-level``, ``--lm-head``), and score export and engines on
the ``shapes`` suite exactly as ``nvila-edge eval FOLDER --n N --seed S`` does. For the int4 recipe it also
counts how many greedy tokens the engines generate equal to the int4 export run by the runtime (position by
position, over the export's answer) on ``--scenes`` rendered scenes; for the fp32 recipe likewise against the
fp32 export, which shows what the default INT8 lm_head changes. Prints one JSON document.

    nice -n 19 python bench/cpu_engines_accuracy.py --work out/quant --n 500 --seed 1234
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from quant_table import add_suite_arguments, export, score

# build options tried per recipe, (accuracy level, lm_head); None = the build's default. The accuracy level
# matters for INT4 LLM weights and for a quantized lm_head (the default of every recipe the build rewrites).
VARIANTS = {"int4": [(None, None), (0, "float")], "fp32": [(None, None), (None, "float")],
            "fp16": [(None, None), (None, "float")]}
DEFAULT_VARIANTS = [(None, None)]
SCORED_EXPORTS = ("fp32", "int4", "int8-int4")
GREEDY_RECIPES = ("int4", "fp32")
PROMPT = "Describe the picture."


def build(export_dir: Path, out: Path, cache: Path, accuracy_level: int | None, lm_head: str | None) -> Path:
    from nvila_edge.engines.build import build_engines, plan_build
    from nvila_edge.engines.cache import EngineCache
    from nvila_edge.engines.targets import get_target

    plan = plan_build(export_dir, get_target("cpu"), accuracy_level=accuracy_level, lm_head=lm_head)
    build_engines(plan, out, EngineCache(cache), progress=False)
    return out


def greedy_agreement(export_dir: Path, engines: Path, scenes: int, threads: int) -> dict:
    """Greedy tokens of ``engines`` equal to the export's, position by position over the export's answers."""
    from nvila_edge.runtime.pipeline import Pipeline
    from nvila_edge.runtime.request import Request
    from nvila_edge.runtime.sampling import SamplingParams
    from nvila_edge.runtime.world.scene import random_scene, render_scene

    want_pipeline, got_pipeline = Pipeline.open(export_dir, threads=threads), Pipeline.open(engines, threads=threads)
    params = SamplingParams(max_new_tokens=48)
    same = total = 0
    for seed in range(scenes):
        request = Request(PROMPT, [render_scene(random_scene(np.random.default_rng(seed), 320, 200))])
        want = want_pipeline.ask(request, params).token_ids
        got = got_pipeline.ask(request, params).token_ids
        same += sum(a == b for a, b in zip(got, want))
        total += len(want)
    return {"tokens": total, "equal": same, "agreement": round(same / max(1, total), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_suite_arguments(parser, n=500, work_help="where the exports and engines go")
    parser.add_argument("--scenes", type=int, default=20, help="scenes for the greedy-token agreement")
    args = parser.parse_args()
    rows: dict[str, dict] = {}
    for recipe in args.recipes.split(","):
        export_dir = args.work / recipe
        export(args.model, export_dir, recipe, args.calib_size, False)
        rows[recipe] = {}
        if recipe in SCORED_EXPORTS:
            rows[recipe]["export"] = score(export_dir, args.n, args.seed, args.threads)["accuracy"]
            print(f"{recipe} export: {rows[recipe]['export']}", file=sys.stderr, flush=True)
        for level, lm_head in VARIANTS.get(recipe, DEFAULT_VARIANTS):
            variant = f"level {'default' if level is None else level}, lm_head {lm_head or 'default'}"
            folder = args.work / f"engines-cpu-{recipe}-{level}-{lm_head}"
            engines = build(export_dir, folder, args.work / "engine-cache", level, lm_head)
            row = {"accuracy": score(engines, args.n, args.seed, args.threads)["accuracy"]}
            if recipe in GREEDY_RECIPES:
                row["greedy_vs_export"] = greedy_agreement(export_dir, engines, args.scenes, args.threads)
            rows[recipe][variant] = row
            print(f"{recipe} {variant}: {row}", file=sys.stderr, flush=True)
    base = rows.get("fp32", {}).get("export")
    if base is not None:
        for row in rows.values():
            for cell in row.values():
                if isinstance(cell, dict):
                    cell["points_vs_fp32_export"] = round(100 * (cell["accuracy"] - base), 2)
    print(json.dumps({"model": args.model, "n": args.n, "seed": args.seed, "recipes": rows}, indent=2))


if __name__ == "__main__":
    main()
