from __future__ import annotations

import argparse

from nvila_edge.options import NON_NEGATIVE, POSITIVE


class EvalCommand:
    """Score a model on an evaluation suite: a table of accuracy per question family on a terminal, JSON with
    --json or when the output goes to a pipe or a file.

    MODEL is a checkpoint folder or 'builtin' (runs the PyTorch reference), or an export/engines folder
    (runs the runtime on that folder's backend). The `shapes` suite asks
    questions about synthetic scenes and clips and counts exact matches of the normalised short answer:
    {"accuracy": ..., "n": ..., "families": {family: accuracy}}.

    examples:
      nvila-edge eval
      nvila-edge eval out/builtin-int8 --n 500 --seed 77
      nvila-edge eval engines/builtin-cpu --json > scores.json
    """

    name = "eval"
    help = "score a model on the synthetic shapes suite (table, or JSON)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", nargs="?", default="builtin",
                            help="checkpoint folder, 'builtin', or an export/engines folder")
        parser.add_argument("--suite", choices=("shapes",), default="shapes",
                            help="question suite (default: shapes, the built-in world's scenes and clips)")
        parser.add_argument("--n", type=POSITIVE, default=200, help="number of questions (default: 200)")
        parser.add_argument("--seed", type=NON_NEGATIVE, default=1234, help="question seed (default: 1234)")
        parser.add_argument("--json", action="store_true",
                            help="print JSON even on a terminal (default: a table there, JSON when piped)")

    def run(self, args: argparse.Namespace) -> int:
        import contextlib
        import json
        import sys
        from pathlib import Path

        from nvila_edge.runtime.evaluation import evaluate
        from nvila_edge.runtime.manifest import MANIFEST

        with contextlib.ExitStack() as stack:
            if (Path(args.model) / MANIFEST).is_file():
                from nvila_edge.runtime.pipeline import Pipeline

                pipeline = stack.enter_context(Pipeline.open(args.model))
                backend = f"runtime ({pipeline.manifest.kind}, {pipeline.manifest.precision})"
            else:
                from nvila_edge.export.checkpoint import load_checkpoint
                from nvila_edge.export.reference import ReferencePipeline

                pipeline = ReferencePipeline(load_checkpoint(args.model))
                backend = "pytorch-reference (fp32)"
            result = evaluate(pipeline.answer_example, n=args.n, seed=args.seed, progress=True)
        report = {"model": str(args.model), "backend": backend, **result}
        print(json.dumps(report, indent=2) if args.json or not sys.stdout.isatty() else format_table(report))
        return 0


def format_table(report: dict) -> str:
    """Accuracy per question family, then the overall line and a few wrong answers."""
    width = max(len(f) for f in [*report["families"], "overall"])
    lines = [f"{report['model']} ({report['backend']}): {report['suite']} suite, {report['n']} questions, "
             f"seed {report['seed']}", f"{'family':<{width}}  accuracy"]
    lines += [f"{family:<{width}}  {score:8.3f}" for family, score in report["families"].items()]
    lines.append(f"{'overall':<{width}}  {report['accuracy']:8.3f}")
    for wrong in report["examples_wrong"][:3]:
        lines.append(f"  wrong: {wrong['question']!r} expected {wrong['expected']!r}, got {wrong['got']!r}")
    return "\n".join(lines)
