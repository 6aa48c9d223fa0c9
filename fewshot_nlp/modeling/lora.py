"""LoRA adapters for MAML: base weights frozen and shared, adapters + head adapt."""

from __future__ import annotations

import copy
import warnings

from torch import nn

from ..errors import ConfigError

# BERT-style names, then the same layers in XLM (what pooling="mean" loads BERT into).
DEFAULT_LORA_TARGETS = (
    *("query", "key", "value", "dense"),
    *("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"),
)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def default_lora_config(r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules=None):
    """A ``peft.LoraConfig`` on the attention and MLP projections of BERT-like encoders
    (BERT's names, and XLM's for ``pooling="mean"``)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules or list(DEFAULT_LORA_TARGETS),
        bias="none",
    )


def apply_lora(model: nn.Module, lora_config=None) -> nn.Module:
    """Wrap ``model`` with PEFT LoRA adapters (a model already wrapped is returned as is)."""
    from peft import PeftModel, get_peft_model

    if isinstance(model, PeftModel):
        return model
    # A copy: the caller's config may serve other runs, and peft fills fields in.
    config = copy.deepcopy(lora_config) if lora_config is not None else default_lora_config()
    # The episode head is rebuilt per episode: peft must not keep a trainable copy of it.
    config.modules_to_save = None
    config.task_type = None
    with warnings.catch_warnings():  # peft asks transformers' deprecated alias, not us
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        return get_peft_model(model, config)


def lora_param_names(model: nn.Module) -> list[str]:
    names = [n for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
    if not names:
        raise ConfigError(
            "adapt_scope='lora' but the model has no trainable LoRA layers. Pass a "
            "peft.LoraConfig (MetaTrainer: lora_config=..., MAML: apply_lora(model) first)."
        )
    return names
