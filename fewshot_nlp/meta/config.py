"""`MAMLConfig`: how an episode is adapted (shared by meta-training and `adapt`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import ConfigError
from ..modeling.head import HEAD_INITS

LEARN_INNER_LR = ("none", "param", "layer")


@dataclass
class MAMLConfig:
    inner_steps: int = field(default=1, metadata={"help": "SGD steps on the support set."})
    inner_learning_rate: float = field(
        default=1e-3, metadata={"help": "Inner-loop SGD learning rate (the start, if learned)."}
    )
    first_order: bool = field(
        default=True,
        metadata={"help": "First-order MAML (no gradient through inner gradients)."},
    )
    adapt_scope: str = field(
        default="full",
        metadata={
            "help": "What adapts in the inner loop: 'full' (encoder + head), 'lora' (LoRA "
            "adapters + head), 'head' (ANIL), or 'top:K' (top K layers + head)."
        },
    )
    head_init: str = field(
        default="proto",
        metadata={"help": "Episode head init: 'proto' (Proto-MAML), 'zero' or 'random'."},
    )
    learn_inner_lr: str = field(
        default="none",
        metadata={
            "help": "Meta-learn inner learning rates: 'none', 'param' (one per adapted tensor, "
            "Meta-SGD style) or 'layer' (one per layer, LEOPARD style)."
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute encoder activations to save memory."}
    )
    support_batch_size: int | None = field(
        default=None,
        metadata={"help": "Process the support set in chunks of this size (None: all at once)."},
    )
    head_name: str | None = field(
        default=None,
        metadata={"help": "Dotted path of the final nn.Linear, for unknown architectures."},
    )

    def __post_init__(self) -> None:
        if self.inner_steps < 0:
            raise ConfigError(f"inner_steps must be >= 0, got {self.inner_steps}.")
        if self.inner_learning_rate <= 0:
            raise ConfigError(f"inner_learning_rate must be > 0, got {self.inner_learning_rate}.")
        if self.head_init not in HEAD_INITS:
            raise ConfigError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}.")
        if self.learn_inner_lr in (True, False):
            self.learn_inner_lr = "param" if self.learn_inner_lr else "none"
        if self.learn_inner_lr not in LEARN_INNER_LR:
            raise ConfigError(
                f"learn_inner_lr must be one of {LEARN_INNER_LR}, got {self.learn_inner_lr!r}."
            )
        scope = self.adapt_scope
        if scope not in ("full", "lora", "head") and not _is_top_k(scope):
            raise ConfigError(
                f"adapt_scope must be 'full', 'lora', 'head' or 'top:K' (K >= 1), got {scope!r}."
            )
        if self.support_batch_size is not None and self.support_batch_size < 1:
            raise ConfigError(f"support_batch_size must be >= 1, got {self.support_batch_size}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MAMLConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _is_top_k(scope: str) -> bool:
    prefix, _, k = scope.partition(":")
    return prefix == "top" and k.isdigit() and int(k) >= 1
