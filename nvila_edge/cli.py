"""The ``nvila-edge`` command line: a thin layer that parses arguments and calls one function per subcommand.

Each subcommand is a small class in ``nvila_edge.commands`` with ``name``, ``help``, ``add_arguments`` and
``run``. Heavy modules (torch, onnxruntime) are imported inside ``run`` so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys

from nvila_edge import __version__
from nvila_edge.errors import NvilaEdgeError

# module:class for every working subcommand, in the order --help lists them.
COMMANDS = [
    "tokens:TokensCommand",
    "make_checkpoint:MakeCheckpointCommand",
    "ask:AskCommand",
    "export:ExportCommand",
    "check:CheckCommand",
    "build:BuildCommand",
    "validate:ValidateCommand",
    "run:RunCommand",
    "eval:EvalCommand",
    "train_builtin:TrainBuiltinCommand",
    "doctor:DoctorCommand",
    "demo:DemoCommand",
    "serve:ServeCommand",
]


def load_commands() -> list:
    commands = []
    for spec in COMMANDS:
        module_name, class_name = spec.split(":")
        module = importlib.import_module(f"nvila_edge.commands.{module_name}")
        commands.append(getattr(module, class_name)())
    return commands


class Parser(argparse.ArgumentParser):
    """A usage error is one line (the usage block would push it off a small terminal) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands: list) -> argparse.ArgumentParser:
    parser = Parser(
        prog="nvila-edge",
        description="NVILA vision-language models on Jetson: export -> build engines -> run / demo.",
    )
    parser.add_argument("--version", action="version", version=f"nvila-edge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=inspect.cleandoc(command.__doc__ or ""),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(load_commands())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except NvilaEdgeError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        from nvila_edge.extras import missing_module_message

        message = missing_module_message(err)
        if message is None or args.debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
