"""``AdaptationArguments``: how ``adapt`` fits new classes. One dataclass for the Python API
(``adapt(model, data, args=AdaptationArguments(...))``), the command line's flags and the
YAML keys, as peft's ``LoraConfig`` is for ``get_peft_model``; every value is checked once,
when the object is made."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..argument_parsing import help_field
from ..errors import ConfigError
from ..meta.config import LabelNames
from ..modeling.head import HEAD_INITS

MIN_MAX_LENGTH = 3  # the special tokens plus at least one word
DEFAULT_MAX_IN_SCOPE_LOSS = 3.0  # points of held-out in-scope accuracy

# The settings that change the run's recorded adaptation (``MAMLConfig``'s names).
CONFIG_FIELDS = (
    "inner_steps",
    "inner_learning_rate",
    "adapt_head_init",
    "adapt_step_candidates",
    "label_names",
    "support_batch_size",
)


@dataclass
class AdaptationArguments:
    """Overrides of what the run recorded (spelled as in ``MAMLConfig``; None keeps the
    run's) and the "none of these" label. A fixed ``inner_steps`` ends the step choice by
    cross-validation, a fixed ``inner_learning_rate`` any learned per-tensor rates."""

    inner_steps: int | None = help_field(
        "Inner steps (default: the meta-trained number).", default=None
    )
    inner_learning_rate: float | None = help_field(
        "Inner learning rate (default: the meta-trained one).", default=None
    )
    adapt_head_init: str | None = help_field(
        "Head fitted on the support features (default: the run's adapt_head_init).",
        default=None,
        metadata={"choices": HEAD_INITS},
    )
    adapt_step_candidates: list[int] | None = help_field(
        "Choose the inner steps among these by cross-validation on the support examples, "
        "e.g. 0 1 3.",
        default=None,
    )
    label_names: LabelNames | None = help_field(
        "Use the label names as examples (default: the run's setting).", default=None
    )
    support_batch_size: int | None = help_field(
        "Support examples per forward pass while adapting (default: the run's).", default=None
    )
    max_length: int | None = help_field("Tokenizer max length.", default=None)
    unknown_label: str | None = help_field(
        "Add this label, predicted when no class fits (e.g. out_of_scope). Its threshold and "
        "a temperature for the scores are fitted by cross-validation on the examples.",
        default=None,
    )
    unknown_data: str | None = help_field(
        "Texts that belong to no class (.txt/.jsonl/.csv; from Python also a list of texts): "
        "the threshold then best separates them from the held-out examples. Needs "
        "unknown_label. Flag: --unknown_file.",
        default=None,
        metadata={"aliases": ["--unknown_file", "--unknown-file"]},
    )
    max_in_scope_loss: float | None = help_field(
        "Points of held-out in-scope accuracy the rejection may cost (default 3; with "
        "unknown_data, none unless given).",
        default=None,
    )

    def __post_init__(self) -> None:
        if self.inner_steps is not None and self.inner_steps < 0:
            raise ConfigError(f"inner_steps must be >= 0, got {self.inner_steps}.")
        rate = self.inner_learning_rate
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"inner_learning_rate must be a finite number > 0, got {rate}.")
        if self.max_length is not None and self.max_length < MIN_MAX_LENGTH:
            raise ConfigError(
                f"max_length must be >= {MIN_MAX_LENGTH} (the special tokens plus at least one "
                f"word), got {self.max_length}."
            )
        if self.support_batch_size is not None and self.support_batch_size < 1:
            raise ConfigError(f"support_batch_size must be >= 1, got {self.support_batch_size}.")
        if self.adapt_head_init is not None and self.adapt_head_init not in HEAD_INITS:
            raise ConfigError(
                f"adapt_head_init must be one of {HEAD_INITS}, got {self.adapt_head_init!r}."
            )
        self._check_rejection()

    def _check_rejection(self) -> None:
        label, loss = self.unknown_label, self.max_in_scope_loss
        if self.unknown_data is not None and label is None:
            raise ConfigError(
                "unknown_data are examples of the rejection label: give unknown_label too "
                "(CLI: --unknown_label NAME with --unknown_file)."
            )
        if label is None:
            if loss is not None:
                raise ConfigError(
                    "max_in_scope_loss sets the rejection threshold: it needs unknown_label "
                    "(CLI: --unknown_label NAME)."
                )
            return
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"unknown_label must be a non-blank name, got {label!r}.")
        if loss is not None and not (math.isfinite(loss) and 0 <= loss < 100):
            raise ConfigError(f"max_in_scope_loss is in accuracy points, 0 <= x < 100; got {loss}.")

    def config_changes(self) -> dict:
        """The changes of the run's ``MAMLConfig`` these settings make."""
        changes = {k: v for k, v in asdict(self).items() if k in CONFIG_FIELDS and v is not None}
        if "adapt_step_candidates" in changes:
            changes["adapt_step_candidates"] = list(changes["adapt_step_candidates"])
        elif "inner_steps" in changes:
            changes["adapt_step_candidates"] = None
        if "inner_learning_rate" in changes:
            changes["learn_inner_lr"] = "none"
        return changes
