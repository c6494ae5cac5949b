from __future__ import annotations

import argparse

from nvila_edge.options import NON_NEGATIVE, NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT

DEFAULT_OUT = "nvila-shapes-trained"


class TrainBuiltinCommand:
    """Train the built-in model from scratch on the synthetic shapes world and write its checkpoint.

    Reproduces the shipped weights (same seeds, same steps) on 2 CPU cores. Prints a progress bar and the
    evaluation accuracy per question family at intervals. The result is a checkpoint folder in the
    published NVILA layout, written to a new folder (--out); replacing the shipped model in the package
    takes --replace-builtin.

    examples:
      nvila-edge train-builtin --out shapes-retrained
      nvila-edge train-builtin --out shapes-seed7 --seed 7 --steps 2000
      nvila-edge train-builtin --replace-builtin
    """

    name = "train-builtin"
    help = "train the built-in shapes model from scratch (CPU, under an hour)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nvila_edge.export.train.settings import TrainSettings, VisionStage  # torch-free

        where = parser.add_mutually_exclusive_group()
        where.add_argument("--out", default=DEFAULT_OUT,
                           help="new checkpoint folder to write (default: %(default)s in the current folder)")
        where.add_argument("--replace-builtin", action="store_true",
                           help="write over the built-in model shipped in the package instead")
        parser.add_argument("--force", action="store_true", help="replace --out if it exists")
        parser.add_argument("--variant", choices=("nvila", "lite"), default=TrainSettings.variant,
                            help="nvila: Dynamic-S2 + 2x2 projector (default); lite: dynamic tiles + 3x3 projector")
        parser.add_argument("--vision-steps", type=NON_NEGATIVE, default=VisionStage.steps,
                            help="first stage: the vision tower alone learns per-patch shape kind and colour "
                                 "(default: %(default)s)")
        parser.add_argument("--steps", type=POSITIVE, default=TrainSettings.steps,
                            help="second stage: the whole model on conversations (default: %(default)s)")
        parser.add_argument("--batch-size", type=POSITIVE, default=TrainSettings.batch_size,
                            help="conversations per step (default: %(default)s)")
        parser.add_argument("--lr", type=POSITIVE_FLOAT, default=TrainSettings.lr,
                            help="peak learning rate of the second stage (default: %(default)s)")
        parser.add_argument("--question-probe", type=NON_NEGATIVE_FLOAT, default=TrainSettings.question_weight,
                            metavar="WEIGHT",
                            help="weight of the training-only probe that makes position and motion questions "
                                 "locate the shapes they name (default: %(default)s; 0 turns it off)")
        parser.add_argument("--question-layer", type=NON_NEGATIVE, default=TrainSettings.question_layer, metavar="N",
                            help="decoder layer (from 0) whose output the question probe reads (default: %(default)s)")
        parser.add_argument("--attention-weight", type=NON_NEGATIVE_FLOAT, default=TrainSettings.attention_weight,
                            metavar="WEIGHT",
                            help="weight of the loss that steers that layer's first heads, at each answer, to the "
                                 "visual tokens of the shapes the question names "
                                 "(default: %(default)s; 0 turns it off)")
        parser.add_argument("--eval-every", type=POSITIVE, default=TrainSettings.eval_every,
                            help="steps between accuracy reports (default: %(default)s)")
        parser.add_argument("--threads", type=POSITIVE, default=TrainSettings.threads,
                            help="torch CPU threads (default: %(default)s)")
        parser.add_argument("--seed", type=NON_NEGATIVE, default=TrainSettings.seed,
                            help="seeds the initial weights, the vision stage's scenes and the conversations "
                                 "(default: %(default)s, the shipped weights; other seeds score differently)")

    def run(self, args: argparse.Namespace) -> int:
        import json
        import tempfile
        from pathlib import Path

        from nvila_edge.export.train.settings import TrainSettings, VisionStage
        from nvila_edge.export.train.trainer import train_builtin
        from nvila_edge.runtime.builtin import builtin_dir

        settings = TrainSettings(variant=args.variant, vision=VisionStage(steps=args.vision_steps), steps=args.steps,
                                 batch_size=args.batch_size, lr=args.lr, question_weight=args.question_probe,
                                 question_layer=args.question_layer, attention_weight=args.attention_weight,
                                 eval_every=args.eval_every,
                                 threads=args.threads, seed=args.seed)
        from nvila_edge.errors import InputError

        out = builtin_dir() if args.replace_builtin else Path(args.out)
        if not args.replace_builtin and out.resolve() == builtin_dir().resolve():
            raise InputError(f"{out} is the shipped built-in model; pass --replace-builtin to write over it")
        if not args.replace_builtin and out.exists() and not args.force:
            raise InputError(f"{out} already exists; choose another --out or pass --force to replace it")
        with tempfile.TemporaryDirectory() as work:
            summary = train_builtin(out, settings, Path(work))
        print(json.dumps({"out": str(out), **summary}))
        return 0
