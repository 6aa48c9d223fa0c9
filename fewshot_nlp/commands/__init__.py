"""The command line, one module per command (as accelerate's ``commands/``): each parses
its flags into the library's dataclasses, checks every flag and path before any work, and
calls the library. ``main`` installs the signal handlers before anything heavy loads."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import warnings

from .. import interrupts
from ..errors import FewShotError, TrainingError

COMMANDS = {
    "meta-train": ("meta_train", "Meta-train an encoder with MAML."),
    "adapt": ("adapt", "Adapt to a few labelled examples and export (or grow an export)."),
    "predict": ("predict", "Classify texts with an exported model."),
    "export-onnx": ("export_onnx", "Write an exported classifier as ONNX (fp32, int8)."),
    "evaluate": ("evaluate", "Episodic / fixed-shot evaluation against baselines."),
    "episodes": ("episodes", "Print sample episodes and the source mixture."),
    "quickstart": ("quickstart", "The whole story on the embedded default (see README)."),
}


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM are recorded from the first moment, so one that lands while a
    # library loads (or inside a finalizer) still ends the command as interrupted.
    previous = interrupts.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        interrupts.restore(previous)
        print("usage: fewshot-nlp {" + ",".join(COMMANDS) + "} ...\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<12}{text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command = argv[0]
    show_warning = warnings.showwarning
    try:
        _quiet_third_parties(command)
        module = importlib.import_module(f".{COMMANDS[command][0]}", __name__)
        code = module.main(argv[1:])
        interrupts.check()  # a signal swallowed on the way: the command did not finish
        return code
    except BaseException as error:  # sorted below; the rest is re-raised
        signum = interrupts.received()
        if signum is None and isinstance(error, KeyboardInterrupt):
            signum = signal.SIGINT
        if signum is not None:  # whatever the interrupt turned into on its way out
            print(
                f"fewshot-nlp {command}: interrupted (nothing half-written kept).",
                file=sys.stderr,
            )
            return 128 + signum  # 130 for Ctrl-C, as shells expect
        if isinstance(error, (FewShotError, TrainingError)):
            print(f"fewshot-nlp {command}: error: {error}", file=sys.stderr)
            return 2
        if isinstance(error, PermissionError):
            print(
                f"fewshot-nlp {command}: error: {error.strerror}: {error.filename}. Check "
                "that you may read (and, for outputs, write) that path.",
                file=sys.stderr,
            )
            return 2
        raise
    finally:
        from ..paths import release_reservations

        release_reservations()  # outputs claimed and never filled (an error, an interrupt)
        interrupts.restore(previous)
        warnings.showwarning = show_warning


def _quiet_third_parties(command: str) -> None:
    """A command's output is its own: our progress bars and messages, warnings as one line
    (``fewshot-nlp adapt: warning: ...``), no download-style bars of the libraries below
    (transformers' weight loading and shard writing; ``HF_HUB_DISABLE_PROGRESS_BARS=0``
    brings them back), info messages of the library on stderr."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"fewshot-nlp {command}: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    log = logging.getLogger("fewshot_nlp")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
