"""`MAMLConfig`: how an episode is adapted (shared by meta-training and `adapt`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args

from ..argument_parsing import help_field
from ..errors import ConfigError
from ..modeling.head import HEAD_INITS
from ..modeling.scopes import parse_adapt_scope

LearnInnerLR = Literal["none", "param", "layer"]
LabelNames = Literal["auto", "always", "never"]
LEARN_INNER_LR = get_args(LearnInnerLR)
LABEL_NAMES = get_args(LabelNames)


@dataclass
class MAMLConfig:
    inner_steps: int = help_field("SGD steps on the support set.", default=1)
    inner_learning_rate: float = help_field(
        "Inner-loop SGD learning rate (the start, if learned).", default=1e-3
    )
    first_order: bool = help_field(
        "First-order MAML (no gradient through inner gradients).", default=True
    )
    adapt_scope: str = help_field(
        "What adapts in the inner loop: 'full' (encoder + head), 'lora' (LoRA "
        "adapters + head), 'head' (ANIL), or 'top:K' (top K layers + head).",
        default="full",
    )
    head_init: str = help_field(
        "Episode head init: 'proto' (Proto-MAML, Euclidean), 'cosine' (prototypes "
        "on L2-normalised features), 'ridge' (closed-form ridge, differentiable), 'logreg' "
        "(logistic regression fitted to convergence), 'zero' or 'random'.",
        default="proto",
        metadata={"choices": HEAD_INITS},
    )
    adapt_head_init: str | None = help_field(
        "Head init at adapt/evaluation time (default: head_init).",
        default=None,
        metadata={"choices": HEAD_INITS},
    )
    logit_scale: float = help_field(
        "Logit scale of the 'cosine' and 'ridge' heads (inverse temperature).", default=20.0
    )
    head_regularization: float = help_field(
        "C of the 'logreg' head (as in scikit-learn); 1/lambda of 'ridge'.", default=10.0
    )
    label_names: LabelNames = help_field(
        "Use each label's name (card_arrival -> 'card arrival') as one more support "
        "example of its class: 'always' (the default, best on held-out sets at 1 and 5 "
        "shots: BENCHMARKS.md, 'Label-name rule'), 'never', or 'auto' (at adapt time only "
        "when the names alone classify the support examples clearly above chance; "
        "meta-training always uses them).",
        default="always",
    )
    label_name_weight: float = help_field(
        "Weight of a label-name example against a real one.", default=1.0
    )
    adapt_step_candidates: list[int] | None = help_field(
        "At adapt time, choose the number of inner steps among these by "
        "cross-validation on the support set (e.g. 0 1 3; None: always inner_steps).",
        default=None,
    )
    adapt_cv_folds: int = help_field(
        "Folds of that cross-validation (capped by the shots).", default=3
    )
    learn_inner_lr: LearnInnerLR = help_field(
        "Meta-learn inner learning rates: 'none', 'param' (one per adapted tensor, "
        "Meta-SGD style) or 'layer' (one per layer, LEOPARD style).",
        default="none",
    )
    gradient_checkpointing: bool = help_field(
        "Recompute encoder activations to save memory.", default=False
    )
    step_checkpointing: bool = help_field(
        "Second order: keep only each inner step's input weights and recompute the "
        "step (forward and inner backward) in the outer backward, so memory no longer grows "
        "with every extra inner step (measured in BENCHMARKS.md).",
        default=False,
    )
    support_batch_size: int | None = help_field(
        "Process the support set in chunks of this size (None: all at once).", default=None
    )
    head_name: str | None = help_field(
        "Dotted path of the final nn.Linear, for unknown architectures.", default=None
    )

    def __post_init__(self) -> None:
        if self.inner_steps < 0:
            raise ConfigError(f"inner_steps must be >= 0, got {self.inner_steps}.")
        if not (math.isfinite(self.inner_learning_rate) and self.inner_learning_rate > 0):
            raise ConfigError(
                f"inner_learning_rate must be a finite number > 0, got {self.inner_learning_rate}."
            )
        for name in ("head_init", "adapt_head_init"):
            value = getattr(self, name)
            if value not in HEAD_INITS and not (name == "adapt_head_init" and value is None):
                raise ConfigError(f"{name} must be one of {HEAD_INITS}, got {value!r}.")
        if self.label_names not in LABEL_NAMES:
            raise ConfigError(
                f"label_names must be one of {LABEL_NAMES}, got {self.label_names!r}."
            )
        if self.label_name_weight <= 0:
            raise ConfigError(f"label_name_weight must be > 0, got {self.label_name_weight}.")
        if not (self.logit_scale > 0 and self.head_regularization > 0):
            raise ConfigError(
                f"logit_scale and head_regularization must be > 0, got {self.logit_scale} and "
                f"{self.head_regularization}."
            )
        if self.adapt_step_candidates is not None:
            if not self.adapt_step_candidates or min(self.adapt_step_candidates) < 0:
                raise ConfigError(
                    "adapt_step_candidates must be a non-empty list of step counts >= 0, got "
                    f"{self.adapt_step_candidates!r}."
                )
        if self.adapt_cv_folds < 2:
            raise ConfigError(f"adapt_cv_folds must be >= 2, got {self.adapt_cv_folds}.")
        if self.learn_inner_lr in (True, False):
            self.learn_inner_lr = "param" if self.learn_inner_lr else "none"
        if self.learn_inner_lr not in LEARN_INNER_LR:
            raise ConfigError(
                f"learn_inner_lr must be one of {LEARN_INNER_LR}, got {self.learn_inner_lr!r}."
            )
        try:
            parse_adapt_scope(self.adapt_scope)
        except ValueError:
            raise ConfigError(
                f"adapt_scope must be 'full', 'lora', 'head' or 'top:K' (K >= 1), got "
                f"{self.adapt_scope!r}."
            ) from None
        if self.support_batch_size is not None and self.support_batch_size < 1:
            raise ConfigError(f"support_batch_size must be >= 1, got {self.support_batch_size}.")

    @property
    def adaptation_head_init(self) -> str:
        return self.adapt_head_init or self.head_init

    def check_adaptation(self) -> None:
        """A head that ignores the support (zero, random) classifies only after inner steps:
        at 0 steps it would export a chance-level classifier."""
        from ..modeling.head import STEPS_ONLY_HEAD_INITS

        head = self.adaptation_head_init
        steps = self.adapt_step_candidates or [self.inner_steps]
        if head in STEPS_ONLY_HEAD_INITS and 0 in steps:
            where = (
                "adapt_step_candidates include 0"
                if self.adapt_step_candidates
                else ("inner_steps is 0")
            )
            raise ConfigError(
                f"adapt_head_init {head!r} starts from a head that ignores the examples, and "
                f"{where}: the classifier would answer at chance. Use a head fitted on the "
                "examples (logreg, ridge, cosine, proto), or give inner steps >= 1."
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MAMLConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def plain_checkpoint_config(model) -> MAMLConfig:
    """How a checkpoint that was never meta-trained is adapted: its LoRA adapters (if any)
    or only its head, a logistic-regression head on normalised features, no inner steps."""
    scope = "lora" if hasattr(model, "peft_config") else "head"
    return MAMLConfig(adapt_scope=scope, head_init="logreg", inner_steps=0)
