"""The command line that does what a page just did, derived from the CLI's own parser.

A page shows `python -m animegan generate ...` for the face it drew. The flags are not written by
hand: `command("generate", checkpoint=..., seed=..., edit=[...])` looks each value up by the
argument's name (argparse's `dest`) in `cli.build_parser()`, leaves out values equal to the
flag's default, and parses the result with the same parser, so a command a page shows is one the
CLI accepts, with the values the page used.
"""
from __future__ import annotations

import argparse
import shlex
from typing import Any

PROGRAM = ["python", "-m", "animegan"]


def _verb_parser(verb: str) -> argparse.ArgumentParser:
    from .cli import build_parser
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs or verb not in subs[0].choices:
        raise ValueError(f"no verb {verb!r} in the command line")
    return subs[0].choices[verb]


def command_argv(verb: str, always: tuple[str, ...] = (), **values: Any) -> list[str]:
    """[verb, --flag, value, ...] for `values` keyed by argument name (argparse dest); None and
    defaults left out (except the names in `always`, e.g. a seed a reader should see); a list is
    a repeated flag. ValueError for a name the verb does not have."""
    sub = _verb_parser(verb)
    actions = {a.dest: a for a in sub._actions if a.option_strings}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise ValueError(f"`{verb}` has no option for {', '.join(unknown)}")
    argv = [verb]
    for dest, action in actions.items():   # the parser's order: the order `--help` lists them
        if dest not in values:
            continue
        v = values[dest]
        if v is None or (not action.required and v == action.default and dest not in always):
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            argv += [flag] if v else []
        elif isinstance(v, (list, tuple)):
            for item in v:
                argv += [flag, str(item)]
        else:
            argv += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    sub.parse_args(argv[1:])                # the CLI accepts it (SystemExit otherwise: a bug here)
    return argv


def command(verb: str, always: tuple[str, ...] = (), **values: Any) -> str:
    """`python -m animegan VERB --flag value ...` as one shell-quoted line."""
    return shlex.join(PROGRAM + command_argv(verb, always, **values))
