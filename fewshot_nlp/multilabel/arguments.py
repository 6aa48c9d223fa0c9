"""``MultiLabelArguments``: how a multi-label classifier is fitted, checked once, here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..argument_parsing import help_field
from ..errors import ConfigError

THRESHOLD_RULES = ("fit", "kfold")
METHODS = ("maml", "maml-base", "logreg", "logreg-names", "setfit")  # evaluation's rows
DEFAULT_METHODS = ("maml", "maml-base", "logreg", "logreg-names")


@dataclass
class MultiLabelArguments:
    """One-vs-rest logistic regression per label on the encoder's normalised sentence
    embeddings, the label names joining as positives, and mixtures of the support examples
    (their embeddings summed, their label sets united) as the texts that say several things.
    Defaults measured on MixSNIPS' pool (never its test file): BENCHMARKS.md, "Multi-label"."""

    label_names: Literal["always", "auto", "never"] = help_field(
        "Each label's name as one more positive example of it: 'always' (measured best on "
        "MixSNIPS' pool), 'auto' (only when the names alone tag the support examples clearly "
        "better than tagging everything), or 'never'; a label without examples needs them.",
        default="always",
    )
    label_name_weight: float = help_field(
        "Weight of a label-name example against a real one.", default=3.0
    )
    mixtures: int = help_field(
        "Mixtures of 1-3 support examples (and names) added to the fit (0: none).", default=200
    )
    regularization: float = help_field("C of each label's logistic regression.", default=10.0)
    threshold: Literal["fit", "kfold"] = help_field(
        "'fit': a label is on at sigmoid >= 0.5 of the class-balanced fit; 'kfold': each "
        "label's threshold moved where k-fold held-out F1 over the shots gains >= 5 points "
        "(half-way; needs >= 2 examples per label). Either way it is folded into the bias.",
        default="fit",
    )
    folds: int = help_field("Folds of the support set's held-out figures.", default=3)
    max_length: int | None = help_field(
        "Tokenizer max_length (default: the model's own).", default=None
    )
    seed: int = help_field("Seed of the mixtures and the folds.", default=0)

    def __post_init__(self) -> None:
        if self.label_names not in ("always", "auto", "never"):
            raise ConfigError(
                f"label_names={self.label_names!r}: choose 'always', 'auto' or 'never'."
            )
        if self.threshold not in THRESHOLD_RULES:
            raise ConfigError(f"threshold={self.threshold!r}: choose one of {THRESHOLD_RULES}.")
        if self.label_name_weight <= 0 or self.regularization <= 0:
            raise ConfigError("label_name_weight and regularization must be > 0.")
        if self.mixtures < 0 or self.folds < 2:
            raise ConfigError("mixtures must be >= 0 and folds >= 2.")
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"max_length={self.max_length}: give a positive length.")
