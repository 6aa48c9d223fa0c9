"""``UnlabeledArguments``: how a pool of unlabeled texts takes part in an adaptation,
checked once, here. Defaults chosen on meta-validation classes (BENCHMARKS.md, "Unlabeled
text"), never on a test file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..argument_parsing import help_field
from ..errors import ConfigError

POOL_RULES = ("kfold", "always")
POOL_METHODS = ("maml+pool", "maml-base+pool", "logreg+pool")  # evaluation's rows
DEFAULT_MAX_UNLABELED = 20_000


@dataclass
class UnlabeledArguments:
    """Self-training of the head: each round labels the pool with the current head, adds the
    most confident texts of each predicted class (a share of the pool that grows every round)
    at a lower weight, and refits. ``pool_rule='kfold'`` first asks the support itself: the
    pool is used only if, over k folds of the labelled examples, the head without it gets at
    least ``min_held_out_accuracy`` of them right and the head with it no fewer."""

    unlabeled_data: str | None = help_field(
        "Unlabeled texts of the same kind as the ones to classify (.txt one per line, .jsonl "
        "or .csv with --text_column; from Python also a list of texts). Flag: --unlabeled_file.",
        default=None,
        metadata={"aliases": ["--unlabeled_file", "--unlabeled-file"]},
    )
    max_unlabeled: int = help_field(
        "Read at most this many distinct texts of the pool: a larger file is streamed and "
        "sampled uniformly (seeded), and the output says so.",
        default=DEFAULT_MAX_UNLABELED,
    )
    pool_rule: Literal["kfold", "always"] = help_field(
        "'kfold': use the pool only where, over k folds of the labelled examples, the head "
        "without it is right on >= min_held_out_accuracy of them and the head with it no less "
        "often; 'always': use it without asking.",
        default="kfold",
    )
    self_training_rounds: int = help_field("Rounds of pseudo-labelling and refitting.", default=2)
    pseudo_label_share: float = help_field(
        "Share of the pool pseudo-labelled by the last round (class-balanced: the most "
        "confident texts of each predicted class, up to this share of the pool over the "
        "classes); earlier rounds take proportionally less.",
        default=0.7,
    )
    pseudo_label_weight: float = help_field(
        "Weight of a pseudo-labelled text against a labelled example.", default=0.5
    )
    min_held_out_accuracy: float = help_field(
        "The k-fold rule also needs the head without the pool to classify at least this share "
        "of the held-out examples right: below it, its pseudo-labels are too noisy to learn "
        "from (0.75 chosen on held-out datasets, BENCHMARKS.md).",
        default=0.75,
    )
    pool_folds: int = help_field("Folds of the k-fold rule.", default=5)
    pool_seed: int = help_field("Seed of the pool's sample when it is capped.", default=0)
    episode_pool: int = help_field(
        "evaluate, episodic protocol: draw a pool of this many texts per episode from the "
        "dataset's texts that are neither support nor query (0: no pool).",
        default=0,
    )
    distractor_share: float = help_field(
        "evaluate --episode_pool: share of the pool drawn from classes outside the episode.",
        default=0.3,
    )

    def __post_init__(self) -> None:
        if self.max_unlabeled < 1:
            raise ConfigError(f"max_unlabeled must be >= 1, got {self.max_unlabeled}.")
        if self.pool_rule not in POOL_RULES:
            raise ConfigError(f"pool_rule={self.pool_rule!r}: choose one of {POOL_RULES}.")
        if self.self_training_rounds < 1:
            raise ConfigError(
                f"self_training_rounds must be >= 1, got {self.self_training_rounds} (to "
                "adapt without the pool, give no unlabeled data)."
            )
        share = self.pseudo_label_share
        if not (math.isfinite(share) and 0 < share <= 1):
            raise ConfigError(
                f"pseudo_label_share is a share of the pool, 0 < x <= 1; got {share}."
            )
        weight = self.pseudo_label_weight
        if not (math.isfinite(weight) and weight > 0):
            raise ConfigError(f"pseudo_label_weight must be a finite number > 0, got {weight}.")
        if self.episode_pool < 0:
            raise ConfigError(f"episode_pool must be >= 0, got {self.episode_pool}.")
        if not 0 <= self.distractor_share < 1:
            raise ConfigError(
                f"distractor_share is a share of the pool, 0 <= x < 1; got {self.distractor_share}."
            )
        if not 0 <= self.min_held_out_accuracy <= 1:
            raise ConfigError(
                f"min_held_out_accuracy is a share, 0 <= x <= 1; got {self.min_held_out_accuracy}."
            )
        if self.pool_folds < 2:
            raise ConfigError(f"pool_folds must be >= 2, got {self.pool_folds}.")
