"""Adapt scopes: which of a model's tensors the inner loop adapts (besides the head)."""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from ..errors import ModelError
from .lora import lora_param_names

# Encoder layer i: BERT-style names, then XLM's (the pooling="mean" class).
_LAYER_RE = re.compile(r"\.(?:layer|layers|block|h|attentions|ffns|layer_norm[12])\.(\d+)\.")


def layer_index(name: str) -> int | None:
    """The encoder layer a parameter belongs to (None: embeddings, pooler, ...)."""
    match = _LAYER_RE.search(name)
    return int(match.group(1)) if match else None


ScopeFn = Callable[[nn.Module, list[tuple[str, nn.Parameter]], int | None], list[str]]
ADAPT_SCOPE_REGISTRY: dict[str, ScopeFn] = {}


def register_adapt_scope(name: str):
    """Function decorator: ``fn(model, named, k) -> names`` becomes ``adapt_scope=name``
    (``name:K`` passes K; ``named``: the (name, parameter) pairs outside the head)."""

    def register(fn: ScopeFn) -> ScopeFn:
        ADAPT_SCOPE_REGISTRY[name] = fn
        return fn

    return register


def parse_adapt_scope(scope: str) -> tuple[str, int | None]:
    """``'top:3'`` -> ``('top', 3)``; ``'full'`` -> ``('full', None)``; ValueError if unknown."""
    name, colon, k = scope.partition(":")
    if name not in ADAPT_SCOPE_REGISTRY or (name == "top") != bool(colon):
        raise ValueError(scope)
    if colon and not (k.isdigit() and int(k) >= 1):
        raise ValueError(scope)
    return name, int(k) if colon else None


def adapted_param_names(model: nn.Module, scope: str, head_params: set[str]) -> list[str]:
    """The tensors the inner loop adapts besides the head, by the registered ``scope``."""
    name, k = parse_adapt_scope(scope)
    named = [(n, p) for n, p in model.named_parameters() if n not in head_params]
    return ADAPT_SCOPE_REGISTRY[name](model, named, k)


@register_adapt_scope("head")
def _head_scope(model, named, k) -> list[str]:
    """ANIL: the head only."""
    return []


@register_adapt_scope("lora")
def _lora_scope(model, named, k) -> list[str]:
    return lora_param_names(model)


@register_adapt_scope("full")
def _full_scope(model, named, k) -> list[str]:
    return [n for n, p in named if p.requires_grad]


@register_adapt_scope("top")
def _top_scope(model, named, k) -> list[str]:
    """The top K encoder layers and everything after the layers (not the embeddings)."""
    trainable = [n for n, p in named if p.requires_grad]
    layer_ids = {i for n in trainable if (i := layer_index(n)) is not None}
    if not layer_ids:
        raise ModelError(
            f"adapt_scope='top:{k}': no numbered encoder layers found in "
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
