"""Every command's --help has examples, and every option says what it does and what it defaults to."""

from __future__ import annotations

import argparse

import pytest

from nvila_edge.cli import build_parser, load_commands


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser(load_commands())
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def needs_default(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Options a user may leave out that take a value: their help must name what they fall back to. (One of
    a required group, such as run's --image / --images / --video, has no default to name.)"""
    flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction))
    chosen = any(g.required and action in g._group_actions for g in parser._mutually_exclusive_groups)
    return bool(action.option_strings) and not action.required and not flag and not chosen


@pytest.mark.parametrize("name", list(subparsers()))
def test_help_has_examples_and_every_option_its_default(name):
    parser = subparsers()[name]
    text = parser.format_help()
    assert "examples:" in text and f"nvila-edge {name}" in text.split("examples:", 1)[1]
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        if not action.help:
            problems.append(f"{label}: no help text")
        elif needs_default(parser, action) and "default" not in action.help.lower():
            problems.append(f"{label}: help does not give the default")
    assert not problems, f"nvila-edge {name}: " + "; ".join(problems)
