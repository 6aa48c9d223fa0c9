"""The fixed-shot protocol on files a user has: a training file (or none: 0-shot), a test
file, and optionally texts of no class (the out-of-scope protocol)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

logger = logging.getLogger(__name__)


def evaluate_files(
    model,
    train_file: str | None,
    test_file: str | None,
    *,
    methods: Sequence[str],
    baseline_model=None,
    data_dir: str | None = None,
    out_of_scope_file: str | None = None,
    rejection=None,
) -> tuple[list[dict], str]:
    """Rows and their table. Relative file names are looked up in ``data_dir`` when they
    are not found as given. ``rejection``: the ``AdaptationArguments`` whose
    ``unknown_label``, ``unknown_data`` and ``max_in_scope_loss`` set the out-of-scope
    protocol's rejection."""
    from ..data.sources import TaskSource, resolve_data_dir
    from .methods import get_method
    from .protocols import evaluate_fixed
    from .report import format_table

    if not test_file:
        raise ConfigError(
            "The fixed-shot protocol needs --test_file (and --train_file; without one, the "
            "test file's label names alone: a 0-shot row)."
        )
    root = resolve_data_dir(data_dir) if data_dir else None

    def file(name):
        path = Path(name)
        return path if path.exists() or root is None else root / name

    train = TaskSource.from_files(file(train_file), name="train") if train_file else None
    test = TaskSource.from_files(file(test_file), name=Path(test_file).parts[0])
    if train is None:  # 0 shots, as in the episodic protocol: the methods that use names
        methods = [m for m in methods if get_method(m).zero_shot]
        if not methods:
            raise ConfigError(
                "Without --train_file the fixed-shot row is 0-shot (the test file's label "
                "names alone), and none of the chosen --method values works without "
                "examples: add maml or label-cosine, or give --train_file."
            )
    if out_of_scope_file:
        return _out_of_scope(
            model, train, test, file(out_of_scope_file), methods, baseline_model, rejection
        )
    results = evaluate_fixed(model, train, test, methods=methods, baseline_model=baseline_model)
    return results, format_table(results)


def _out_of_scope(model, train, test, path, methods, baseline, rejection):
    from ..data.files import read_texts
    from .out_of_scope import OUT_OF_SCOPE_METHODS, evaluate_out_of_scope, format_table

    kept = [m for m in methods if m in OUT_OF_SCOPE_METHODS]
    skipped = [m for m in methods if m not in OUT_OF_SCOPE_METHODS]
    if not kept:
        raise ConfigError(
            f"--out_of_scope_file scores {list(OUT_OF_SCOPE_METHODS)}; --method gave {methods}."
        )
    if skipped:
        logger.info("out-of-scope protocol: %s have no rejection rule, skipped", skipped)
    results = evaluate_out_of_scope(
        model,
        train,
        test,
        [text for text in read_texts(path) if text.strip()],
        methods=kept,
        baseline_model=baseline,
        unknown_label=(rejection and rejection.unknown_label) or "out_of_scope",
        max_in_scope_loss=rejection and rejection.max_in_scope_loss,
        unknown_data=rejection and rejection.unknown_data,
    )
    return results, format_table(results)
