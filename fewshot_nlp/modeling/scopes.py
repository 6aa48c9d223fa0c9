"""Adapt scopes: which of a model's tensors the inner loop adapts (besides the head)."""

from __future__ import annotations

import re

from torch import nn

from ..errors import ModelError
from .lora import lora_param_names

# Encoder layer i: BERT-style names, then XLM's (the pooling="mean" class).
_LAYER_RE = re.compile(r"\.(?:layer|layers|block|h|attentions|ffns|layer_norm[12])\.(\d+)\.")


def layer_index(name: str) -> int | None:
    """The encoder layer a parameter belongs to (None: embeddings, pooler, ...)."""
    match = _LAYER_RE.search(name)
    return int(match.group(1)) if match else None


def adapted_param_names(model: nn.Module, scope: str, head_params: set[str]) -> list[str]:
    """'head': none; 'lora': the LoRA tensors; 'full': every trainable tensor; 'top:K': the
    top K encoder layers and everything after the layers (not the embeddings)."""
    named = [(n, p) for n, p in model.named_parameters() if n not in head_params]
    if scope == "head":
        return []
    if scope == "lora":
        return lora_param_names(model)
    trainable = [n for n, p in named if p.requires_grad]
    if scope == "full":
        return trainable
    k = int(scope.split(":")[1])
    layer_ids = {i for n in trainable if (i := layer_index(n)) is not None}
    if not layer_ids:
        raise ModelError(
            f"adapt_scope={scope!r}: no numbered encoder layers found in "
            f"{type(model).__name__}; use 'full', 'lora' or 'head'."
        )
    first_top = max(layer_ids) + 1 - k
    embeddings_end = min(i for i, (n, _) in enumerate(named) if layer_index(n) is not None)
    names = []
    for i, (n, p) in enumerate(named):
        if not p.requires_grad:
            continue
        layer = layer_index(n)
        if (layer is not None and layer >= first_top) or (layer is None and i > embeddings_end):
            names.append(n)
    return names
