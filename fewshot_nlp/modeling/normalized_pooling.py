"""An export whose head reads the *normalised* sentence embedding, in plain transformers.

The mean-pooling export (``pooling.py``) hands its head ``sum(hidden) / padded_length``: the
sentence embedding ``m`` times its length ratio. Heads fitted on ``m / ||m||`` (cosine,
ridge, logreg) then score ``||m|| / mean_norm`` times what they were fitted to score: the
argmax is right, but a score threshold (out-of-scope rejection) reads the norm too, and the
scores of a padded text shrink. One more XLM layer removes both:

* attention with zero queries and keys is uniform over the real tokens, so with the value
  map ``I`` and the output map ``c R`` every token receives ``c R m`` (``m``: the masked
  mean of the last hidden states), ``c`` so large that the residual is lost in it;
* its LayerNorm (gain 1, bias 0) turns ``R m`` into ``sqrt(d) R P m / ||P m||``, where ``R``
  is a reflection taking a unit direction ``e`` to the all-ones direction and ``P`` projects
  ``e`` out; the feed-forward block is zero, the second LayerNorm leaves it as it is;
* the head reads the first token (``summary_type="first"``), identical for every real token
  and independent of padding.

With ``e`` orthogonal to every class row, the class rows ``R w / sqrt(d)`` give ``w . m /
||P m||``: the normalised head's own logits, up to the (small) share of ``m`` along ``e``.
Computed in float32 or bfloat16 (``c`` overflows float16).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import ModelError
from .head import find_head, set_head
from .pooling import is_mean_pooling

SCALE = 1e6  # c: the residual (norm ~ 10) is a 1e-6 share of c R m


def normalize_pooled_features(
    model: nn.Module, head_weight: torch.Tensor, features: torch.Tensor | None = None
) -> nn.Module:
    """Turn a mean-pooling XLM classifier (in place) into one whose head reads the
    normalised embedding; ``head_weight``: the head on *normalised* features (rows ``w``);
    ``features``: sentence embeddings whose variance along ``e`` is kept small."""
    if not is_mean_pooling(model):
        raise ModelError("normalize_pooled_features converts a mean-pooling XLM classifier.")
    transformer = model.transformer
    dim = head_weight.shape[1]
    e = _free_direction(head_weight.detach().double(), features)
    reflection = _reflection(e, torch.full((dim,), 1 / math.sqrt(dim), dtype=torch.float64))
    layer = {
        "attentions": copy.deepcopy(transformer.attentions[-1]),
        "layer_norm1": copy.deepcopy(transformer.layer_norm1[-1]),
        "ffns": copy.deepcopy(transformer.ffns[-1]),
        "layer_norm2": copy.deepcopy(transformer.layer_norm2[-1]),
    }
    attention = layer["attentions"]
    attention.layer_id = len(transformer.attentions)
    with torch.no_grad():
        for linear in (attention.q_lin, attention.k_lin, layer["ffns"].lin1, layer["ffns"].lin2):
            linear.weight.zero_()
            linear.bias.zero_()
        attention.v_lin.weight.copy_(torch.eye(dim))
        attention.v_lin.bias.zero_()
        attention.out_lin.weight.copy_(SCALE * reflection.to(attention.out_lin.weight))
        attention.out_lin.bias.zero_()
        for norm in (layer["layer_norm1"], layer["layer_norm2"]):
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    for name, module in layer.items():
        getattr(transformer, name).append(module)
    transformer.n_layers += 1
    model.config.n_layers = transformer.n_layers
    model.sequence_summary.summary_type = model.config.summary_type = "first"
    rows = (reflection.to(head_weight) @ head_weight.T).T / math.sqrt(dim)
    head_name = find_head(model)
    head = model.get_submodule(head_name)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    set_head(model, head_name, rows, torch.zeros_like(head.bias), labels)
    return model


def without_normalized_layer(model: nn.Module) -> nn.Module:
    """Undo ``normalize_pooled_features`` (in place): drop the added layer, read the mean
    again. The encoder below it was never changed, so this is the classifier it started from."""
    transformer = model.transformer
    if model.config.summary_type != "first" or transformer.n_layers < 2:
        raise ModelError("This model has no normalising layer to remove.")
    for name in ("attentions", "layer_norm1", "ffns", "layer_norm2"):
        del getattr(transformer, name)[-1]
    transformer.n_layers -= 1
    model.config.n_layers = transformer.n_layers
    model.sequence_summary.summary_type = model.config.summary_type = "mean"
    return model


def _free_direction(rows: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    """A unit vector orthogonal to every class row, along which ``features`` vary least."""
    _, singular, right = torch.linalg.svd(rows, full_matrices=True)
    rank = int((singular > singular.max() * 1e-10).sum())
    free = right[rank:]  # (d - rank, d): orthonormal, orthogonal to the rows
    if not len(free):
        raise ModelError(
            "normalize_pooled_features needs fewer classes than hidden dimensions "
            f"({rows.shape[0]} classes, {rows.shape[1]} dimensions)."
        )
    if features is None or not len(features):
        return free[-1]
    x = nn.functional.normalize(features.double(), dim=-1) @ free.T
    _, vectors = torch.linalg.eigh(x.T @ x)
    return free.T @ vectors[:, 0]


def _reflection(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Householder reflection taking unit ``source`` to unit ``target`` (symmetric)."""
    u = source - target
    if float(u.norm()) < 1e-12:
        return torch.eye(len(source), dtype=source.dtype)
    u = u / u.norm()
    return torch.eye(len(source), dtype=source.dtype) - 2 * torch.outer(u, u)
