"""The episode head: the final ``nn.Linear`` of a sequence classifier, found, sized and set.

Everything before that layer is the encoder; its input is the feature vector the
prototypes are built from. Sizing the head per episode is what lets tasks with different
label sets share one encoder, and writing it back makes the export a standard model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ModelError

# Looked at in this order; the first that is an nn.Linear wins.
HEAD_CANDIDATES = (
    "classifier.out_proj",
    "classifier",
    "score",
    "logits_proj",
    "head",
    "sequence_summary.summary",
)


def unwrap_peft(model: nn.Module) -> nn.Module:
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
    base = unwrap_peft(model)
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
    return unwrap_peft(model).get_submodule(head_name)


def head_param_names(model: nn.Module, head_name: str) -> set[str]:
    """Names (in ``model.named_parameters()``) of every parameter inside the head module."""
    target = head_module(model, head_name)
    owned = {id(p) for p in target.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in owned}


def class_prototypes(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """(Weighted) mean feature vector of each class, shape (n_way, hidden)."""
    one_hot = F.one_hot(labels, n_way).to(features.dtype)
    if weights is not None:
        one_hot = one_hot * weights.to(features.dtype)[:, None]
    counts = one_hot.sum(0)
    if bool((counts == 0).any()):
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ConfigError(f"Classes {empty} have no support examples; every class needs one.")
    return one_hot.T @ features / counts[:, None]


HeadInitFn = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]
HEAD_INIT_REGISTRY: dict[str, HeadInitFn] = {}
NORMALIZED_HEAD_INITS: list[str] = []  # read L2-normalised features (cosine geometry)
# Start from nothing the support says (zero, random): only inner steps make them classify.
STEPS_ONLY_HEAD_INITS: list[str] = []


def register_head_init(name: str, *, normalized: bool = False, steps_only: bool = False):
    """Function decorator: ``fn(features, labels, n_way, weights=, logit_scale=,
    regularization=, generator=) -> (weight, bias)`` becomes ``head_init=name``.
    ``steps_only``: the head ignores the support, so it classifies only after inner steps."""

    def register(fn: HeadInitFn) -> HeadInitFn:
        HEAD_INIT_REGISTRY[name] = fn
        if normalized:
            NORMALIZED_HEAD_INITS.append(name)
        if steps_only:
            STEPS_ONLY_HEAD_INITS.append(name)
        return fn

    return register


def init_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    method: str = "proto",
    generator: torch.Generator | None = None,
    *,
    weights: torch.Tensor | None = None,
    logit_scale: float = 20.0,
    regularization: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Episode head ``(weight, bias)`` for ``n_way`` classes from the support features, by
    the registered init ``method``.

    The normalised heads (``cosine``, ``ridge``, ``logreg``) expect L2-normalised features
    and have no bias, so their argmax does not depend on a feature's norm: a standard linear
    head on the raw features (``standard_head``) predicts exactly what they predict.
    ``weights`` weigh the examples (e.g. a label-name pseudo-example against the real ones).
    """
    if method not in HEAD_INIT_REGISTRY:
        raise ConfigError(f"head_init must be one of {HEAD_INITS}, got {method!r}.")
    return HEAD_INIT_REGISTRY[method](
        features,
        labels,
        n_way,
        weights=weights,
        logit_scale=logit_scale,
        regularization=regularization,
        generator=generator,
    )


@register_head_init("proto")
def _proto_head(features, labels, n_way, *, weights, **_):
    """Proto-MAML: ``W = 2 c_k``, ``b = -||c_k||^2``, so logits are the negative squared
    distance to each prototype up to a per-example constant."""
    protos = class_prototypes(features, labels, n_way, weights)
    return 2 * protos, -(protos**2).sum(-1)


@register_head_init("cosine", normalized=True)
def _cosine_head(features, labels, n_way, *, weights, logit_scale, **_):
    """``W = logit_scale * c_k / ||c_k||``: the nearest prototype by cosine."""
    protos = F.normalize(class_prototypes(features, labels, n_way, weights), dim=-1)
    return logit_scale * protos, features.new_zeros(n_way)


@register_head_init("ridge", normalized=True)
def _ridge_head(features, labels, n_way, *, weights, logit_scale, regularization, **_):
    """Closed-form ridge regression onto one-hot targets, ``lambda = 1 / regularization``,
    scaled by ``logit_scale``; differentiable (R2-D2)."""
    class_prototypes(features, labels, n_way)  # every class needs an example
    root = features.new_ones(len(labels)) if weights is None else weights.to(features).sqrt()
    x = features * root[:, None]
    targets = F.one_hot(labels, n_way).to(features.dtype) * root[:, None]
    eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    dual = torch.linalg.solve(x @ x.T + eye / regularization, targets)
    return logit_scale * (dual.T @ x), features.new_zeros(n_way)


@register_head_init("logreg", normalized=True)
def _logreg_head(features, labels, n_way, *, weights, regularization, **_):
    """Multinomial logistic regression fitted to convergence (L-BFGS), with scikit-learn's
    objective at ``C = regularization``; not differentiated through."""
    return fit_logistic_regression(features, labels, n_way, c=regularization, weights=weights)


@register_head_init("zero", steps_only=True)
def _zero_head(features, labels, n_way, **_):
    return features.new_zeros(n_way, features.shape[-1]), features.new_zeros(n_way)


@register_head_init("random", steps_only=True)
def _random_head(features, labels, n_way, *, generator, **_):
    weight = torch.randn(n_way, features.shape[-1], generator=generator, dtype=torch.float32)
    weight = weight * 0.02
    return weight.to(features), features.new_zeros(n_way)


HEAD_INITS = tuple(HEAD_INIT_REGISTRY)


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    *,
    c: float = 10.0,
    weights: torch.Tensor | None = None,
    max_iter: int = 200,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression without intercept, solved by L-BFGS to convergence.

    The objective is scikit-learn's (``||W||^2 / 2 + C * sum of cross-entropies``), divided by
    ``C * n`` so the scale does not depend on the support size. Starts from the cosine
    prototypes; runs in float64 on detached features.
    """
    x = features.detach().double()
    y = labels.to(x.device)
    w = x.new_ones(len(y)) if weights is None else weights.detach().to(x)
    protos = F.normalize(class_prototypes(x, y, n_way, w), dim=-1)
    weight = protos.clone().requires_grad_()
    penalty = 1.0 / (2.0 * c * float(w.sum()))
    optimizer = torch.optim.LBFGS(
        [weight],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        losses = F.cross_entropy(x @ weight.T, y, reduction="none")
        loss = (w * losses).sum() / w.sum() + penalty * (weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    weight = weight.detach().to(features.dtype)
    return weight, features.new_zeros(n_way)


def standard_head(
    weight: torch.Tensor, bias: torch.Tensor, feature_norm: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head as a plain ``nn.Linear`` on raw features (what the export holds).

    A normalised head has no bias, so dividing its weight by the support's mean feature norm
    keeps every prediction; only the confidence of an example whose norm differs from the
    mean is sharpened or softened by that ratio.
    """
    if feature_norm is None:
        return weight, bias
    return weight / feature_norm, bias


@dataclass(frozen=True)
class EpisodeHead:
    """One rule for an episode's head: how it starts from the support features (``init``),
    how it scores features while adapting, and the plain ``nn.Linear`` it is exported as.

    The normalised inits (cosine, ridge, logreg) read L2-normalised features; ``standard``
    turns such a head into one on raw features with the same predictions.
    """

    init: str = "proto"
    logit_scale: float = 20.0
    regularization: float = 10.0

    @property
    def normalized(self) -> bool:
        return self.init in NORMALIZED_HEAD_INITS

    def read(self, features: torch.Tensor) -> torch.Tensor:
        """The features as this head reads them."""
        return F.normalize(features, dim=-1) if self.normalized else features

    def fit(self, features, labels, n_way: int, example_weights=None):
        """``(weight, bias)`` from (raw) support features."""
        return init_head(
            self.read(features),
            labels,
            n_way,
            self.init,
            weights=example_weights,
            logit_scale=self.logit_scale,
            regularization=self.regularization,
        )

    def logits(self, features: torch.Tensor, weight, bias) -> torch.Tensor:
        """Scores while adapting."""
        return F.linear(self.read(features), weight, bias)

    def standard(self, weight, bias, feature_norm: float | None):
        """The head on raw features (see ``standard_head``)."""
        return standard_head(weight, bias, feature_norm if self.normalized else None)


def set_head(
    model: nn.Module,
    head_name: str,
    weight: torch.Tensor,
    bias: torch.Tensor,
    label_names: list[str],
) -> nn.Module:
    """Replace the head with an ``nn.Linear`` holding ``weight``/``bias`` and name the labels."""
    base = unwrap_peft(model)
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
