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
import tempfile

from handwritten import __version__
from handwritten.errors import HandwrittenError

COMMANDS = [
    "handwritten.download",
    "handwritten.sample",
    "handwritten.emnist_cli",
    "handwritten.train_cli",
    "handwritten.evaluate",
    "handwritten.predict_cli",
    "handwritten.export",
    "handwritten.serve_cli",
]


# Commands that run Keras models; the others (download, sample, inspect) never load TensorFlow.
KERAS_COMMANDS = {"train", "finetune", "evaluate", "predict", "export", "serve"}


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and list its devices with the lines its C++ libraries print kept off the terminal.

    TensorFlow logs oneDNN and CUDA-probing notices (``I0000 ... port.cc``, ``cudart_stub.cc``,
    ``E0000 ... failed call to cuInit`` on a machine without a GPU, ``WARNING: All log messages
    before absl::InitializeLog()``) without regard to ``TF_CPP_MIN_LOG_LEVEL``. They go to a
    temporary file, shown only if this fails; ``TF_CPP_MIN_LOG_LEVEL=0`` lets them through.
    Listing physical devices does not start the runtime, so distribution strategies can still
    be set up afterwards.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # probes CUDA (cuInit) and logs when it finds none
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handwritten",
        description="Train Keras networks on EMNIST and read handwritten characters in your own images.",
    )
    parser.add_argument("--version", action="version", version=f"handwritten {__version__}")
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
    if args.command in KERAS_COMMANDS and not str(getattr(args, "model", "")).lower().endswith(".onnx"):
        _import_tensorflow_quietly()
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
