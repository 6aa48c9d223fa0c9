"""The episode head: the final ``nn.Linear`` of a sequence classifier, found, sized and set.

Everything before that layer is the encoder; its input is the feature vector the
prototypes are built from. Sizing the head per episode is what lets tasks with different
label sets share one encoder, and writing it back makes the export a standard model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ModelError

# Looked at in this order; the first that is an nn.Linear wins.
HEAD_CANDIDATES = ("classifier.out_proj", "classifier", "score", "logits_proj", "head")
HEAD_INITS = ("proto", "zero", "random")


def _base_modules(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _as_linear(module: nn.Module | None) -> nn.Linear | None:
    if isinstance(module, nn.Linear):
        return module
    original = getattr(module, "original_module", None)  # peft ModulesToSaveWrapper
    return original if isinstance(original, nn.Linear) else None


def find_head(model: nn.Module, head_name: str | None = None) -> str:
    """Dotted path (in the transformers model) of the final linear layer that gives logits."""
    base = _base_modules(model)
    modules = dict(base.named_modules())
    names = (head_name,) if head_name else HEAD_CANDIDATES
    for name in names:
        if _as_linear(modules.get(name)) is not None:
            return name
    if head_name:
        linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)][-5:]
        raise ModelError(
            f"head_name={head_name!r} is not an nn.Linear in {type(base).__name__}. "
            f"Its last linear layers are {linears}."
        )
    raise ModelError(
        f"Could not find the classification head of {type(base).__name__}: looked for an "
        f"nn.Linear at {list(HEAD_CANDIDATES)}. Pass head_name='<dotted path of the final "
        "nn.Linear>' to name it."
    )


def head_module(model: nn.Module, head_name: str) -> nn.Module:
    """The module at ``head_name`` (a PEFT wrapper around the linear layer, if any)."""
    return _base_modules(model).get_submodule(head_name)


def head_param_names(model: nn.Module, head_name: str) -> set[str]:
    """Names (in ``model.named_parameters()``) of every parameter inside the head module."""
    target = head_module(model, head_name)
    owned = {id(p) for p in target.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in owned}


def class_prototypes(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Mean feature vector of each class, shape (n_way, hidden)."""
    one_hot = F.one_hot(labels, n_way).to(features.dtype)
    counts = one_hot.sum(0)
    if bool((counts == 0).any()):
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ConfigError(f"Classes {empty} have no support examples; every class needs one.")
    return one_hot.T @ features / counts[:, None]


def init_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    method: str = "proto",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Episode head ``(weight, bias)`` for ``n_way`` classes from the support features.

    ``proto`` (Proto-MAML): ``W = 2 c_k``, ``b = -||c_k||^2``, so logits are the negative
    squared distance to each prototype up to a per-example constant.
    """
    hidden = features.shape[-1]
    if method == "proto":
        protos = class_prototypes(features, labels, n_way)
        return 2 * protos, -(protos**2).sum(-1)
    if method == "zero":
        zeros = features.new_zeros(n_way, hidden)
        return zeros, features.new_zeros(n_way)
    if method == "random":
        weight = torch.randn(n_way, hidden, generator=generator, dtype=torch.float32) * 0.02
        return weight.to(features), features.new_zeros(n_way)
    raise ConfigError(f"head_init must be one of {HEAD_INITS}, got {method!r}.")


def set_head(
    model: nn.Module,
    head_name: str,
    weight: torch.Tensor,
    bias: torch.Tensor,
    label_names: list[str],
) -> nn.Module:
    """Replace the head with an ``nn.Linear`` holding ``weight``/``bias`` and name the labels."""
    base = _base_modules(model)
    parent_name, _, attr = head_name.rpartition(".")
    parent = base.get_submodule(parent_name) if parent_name else base
    old = _as_linear(getattr(parent, attr))
    n_way, hidden = weight.shape
    new = nn.Linear(hidden, n_way, bias=True, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias)
    setattr(parent, attr, new)
    config = base.config
    config.num_labels = n_way
    config.id2label = {i: str(name) for i, name in enumerate(label_names)}
    config.label2id = {str(name): i for i, name in enumerate(label_names)}
    if n_way > 1:
        config.problem_type = "single_label_classification"
    return model
