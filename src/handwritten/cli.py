"""The ``handwritten`` command: one sub-command per verb, each defined beside the code it runs.

Each module in ``COMMANDS`` has a ``register(subparsers)`` that adds its sub-commands with
``set_defaults(run=function)``; the function takes the parsed arguments and returns the exit
status. Modules keep TensorFlow imports inside functions, so ``handwritten --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from handwritten.errors import HandwrittenError

COMMANDS = [
    "handwritten.download",
    "handwritten.sample",
    "handwritten.emnist_cli",
    "handwritten.train",
    "handwritten.evaluate",
    "handwritten.predict",
    "handwritten.export",
    "handwritten.server",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handwritten",
        description="Train Keras networks on EMNIST and read handwritten characters in your own images.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command not yet built
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's start-up chatter is not for the user of a command-line tool.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except HandwrittenError as exc:
        print(f"handwritten {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"handwritten {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
