"""The inner loop's parts: an episode prepared once, then stepped by one of two strategies.

``prepare_episode`` turns a support set into a ``PreparedEpisode`` (its chunks with the
label names last if they join, their features at the start weights, example weights, the
initial head). Meta-training steps it with ``DifferentiableSteps`` (the graph kept for the
meta-gradient; second order through the inner gradients, optionally step-checkpointed);
adaptation with ``DetachedSteps`` (chunk by chunk, nothing kept, standard heads at the step
counts asked for, which the cross-validation of ``choose_inner_steps`` compares).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import TrainingError
from ..modeling.head import EpisodeHead

logger = logging.getLogger(__name__)

HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"
Weights = dict[str, torch.Tensor]


@dataclass
class PreparedEpisode:
    """An episode ready for inner steps. ``parts``: (inputs, labels) chunks of the support set,
    the label names last when they join; ``features``: each part's features at the start
    weights; ``part_weights`` / ``total``: each example's weight in the support loss;
    ``start``: the fast weights before any step, head included; ``feature_norm``: the support's
    mean feature norm (adaptation with a normalised head: what ``standard`` divides by)."""

    parts: list[tuple[dict[str, torch.Tensor], torch.Tensor]]
    features: list[torch.Tensor]
    part_weights: list[torch.Tensor]
    total: torch.Tensor | float
    start: Weights
    head: EpisodeHead
    create_graph: bool = False
    feature_norm: float | None = None
    metrics: dict = field(default_factory=dict)

    def part_loss(self, maml: nn.Module, i: int, weights: Weights, reuse: bool) -> torch.Tensor:
        """Part ``i``'s share of the weighted support loss at ``weights`` (``reuse``: its
        features at the start weights, valid while the encoder has not moved)."""
        inputs, labels = self.parts[i]
        with torch.enable_grad():
            if reuse:
                feats = self.features[i]
            else:
                feats = maml.features(weights, inputs, self.create_graph)
            logits = self.head.logits(feats, weights[HEAD_WEIGHT], weights[HEAD_BIAS])
            losses = F.cross_entropy(logits, labels, reduction="none")
            return (self.part_weights[i] * losses).sum() / self.total


@dataclass
class StartFeatures:
    """The head features of an episode's support texts and label names at the start weights
    (the model's own), when the caller has them already."""

    support: torch.Tensor | None = None
    names: torch.Tensor | None = None


def prepare_episode(
    maml: nn.Module,
    support: dict[str, torch.Tensor],
    labels: torch.Tensor,
    n_way: int,
    head: EpisodeHead,
    name_inputs: dict[str, torch.Tensor] | None = None,
    *,
    meta_grad: bool = True,
    start_features: StartFeatures | None = None,
) -> PreparedEpisode:
    """Support chunks, their features at the start weights, the label names when they join
    (``_names_join``), example weights, and the initial head fitted on all of it.
    ``start_features`` (adaptation only): those features already computed (an evaluation's
    cache), so an episode that takes no step runs no encoder forward at all."""
    if start_features is not None and meta_grad:
        raise TrainingError("start_features are for adaptation (no meta-gradient).")
    create_graph = meta_grad and not maml.config.first_order
    examples = labels.shape[0]
    size = labels.shape[0] if meta_grad else (maml.config.support_batch_size or examples)
    size = max(size, 1)  # 0-shot: no chunks at all
    parts = _chunks(support, labels, size)
    chunks = len(parts)
    params = dict(maml.model.named_parameters())
    fast = {n: params[n] if meta_grad else params[n].detach() for n in maml.fast_names}
    metrics: dict = {}
    given = start_features or StartFeatures()
    with torch.enable_grad() if meta_grad else torch.no_grad():
        if given.support is not None and parts:
            cached = list(given.support.split(size))
        else:
            cached = [maml.features(fast, inputs, create_graph) for inputs, _ in parts]
        if name_inputs is not None and maml.config.label_names != "never":
            name_feats = given.names
            if name_feats is None:
                name_feats = maml.features(fast, name_inputs, create_graph)
            if _names_join(maml, cached, labels, n_way, name_feats, meta_grad, metrics):
                name_labels = torch.arange(n_way, device=labels.device)
                parts.append((name_inputs, name_labels))
                cached.append(name_feats)
        names = n_way if len(parts) > chunks else 0
        example_weights = _example_weights(maml.config, examples, names, labels.device)
        all_labels = torch.cat([part_labels for _, part_labels in parts])
        weight, bias = head.fit(torch.cat(cached), all_labels, n_way, example_weights)
    if meta_grad:
        fast[HEAD_WEIGHT] = weight if weight.requires_grad else weight.requires_grad_()
        fast[HEAD_BIAS] = bias if bias.requires_grad else bias.requires_grad_()
    else:
        fast[HEAD_WEIGHT], fast[HEAD_BIAS] = weight.detach(), bias.detach()
    norm = None
    if head.normalized and not meta_grad:
        # the support's mean norm (0-shot: the names')
        norm = torch.cat(cached)[: examples or None].float().norm(dim=-1).mean().item()
        metrics["feature_norm"] = norm
    sizes = [len(part_labels) for _, part_labels in parts]
    total = example_weights.sum()
    return PreparedEpisode(
        parts=parts,
        features=cached,
        part_weights=list(example_weights.split(sizes)),
        total=total if meta_grad else float(total),
        start=fast,
        head=head,
        create_graph=create_graph,
        feature_norm=norm,
        metrics=metrics,
    )


def _example_weights(config, examples: int, names: int, device) -> torch.Tensor:
    """1 per real example, ``label_name_weight`` per label-name example (these come last)."""
    weights = torch.ones(examples + names, device=device)
    weights[examples:] = config.label_name_weight
    return weights


def _names_join(
    maml: nn.Module, cached, labels, n_way: int, name_feats, meta_grad: bool, metrics
) -> bool:
    """Whether the label names join the support: meta-training always, a class without
    examples always (they are all it has), otherwise when ``_names_help``."""
    if not every_class_has_examples(labels, n_way):
        if not meta_grad:
            metrics["label_names_used"] = True
        return True
    return meta_grad or _names_help(maml.config, torch.cat(cached), labels, name_feats, metrics)


def _names_help(config, feats, labels, name_feats, metrics: dict) -> bool:
    """Whether the label names go in: 'auto' asks if the names alone classify the support
    examples (nearest name by cosine) at least two standard errors above chance."""
    if config.label_names == "always":
        metrics["label_names_used"] = True
        return True
    similarity = F.normalize(feats.float(), dim=-1) @ F.normalize(name_feats.float(), dim=-1).T
    accuracy = (similarity.argmax(-1) == labels).float().mean().item()
    chance = 1.0 / name_feats.shape[0]
    needed = chance + 2 * math.sqrt(chance * (1 - chance) / len(labels))
    metrics["label_name_accuracy"] = accuracy
    metrics["label_names_used"] = accuracy >= needed
    return metrics["label_names_used"]


def _chunks(support: dict[str, torch.Tensor], labels: torch.Tensor, size: int) -> list:
    """The support set as (inputs, labels) parts of at most ``size`` examples."""
    return [
        ({k: v[i : i + size] for k, v in support.items()}, labels[i : i + size])
        for i in range(0, labels.shape[0], size)
    ]


def every_class_has_examples(labels: torch.Tensor, n_way: int) -> bool:
    return bool(labels.numel()) and int(torch.unique(labels).numel()) == n_way


def inner_grads(loss, fast: Weights, keys: list[str], create_graph: bool, first: bool):
    """Partial derivatives of the support loss, the head held fixed.

    At step 0 the head is a function of the encoder (prototypes). The inner step must not
    follow that path, yet the meta-gradient must: so the head's partials are taken first,
    and the encoder's backward is given ``-dL/dW`` at the head to cancel it.
    """
    head = fast[HEAD_WEIGHT], fast[HEAD_BIAS]
    encoder = [n for n in keys if n not in (HEAD_WEIGHT, HEAD_BIAS)]
    if not (first and head[0].grad_fn is not None):
        return torch.autograd.grad(
            loss,
            [fast[n] for n in keys],
            create_graph=create_graph,
            retain_graph=create_graph or first,
            allow_unused=True,
            materialize_grads=True,
        )
    g_head = torch.autograd.grad(loss, head, retain_graph=True, create_graph=create_graph)
    g_enc = ()
    if encoder:
        g_enc = torch.autograd.grad(
            [loss, *head],
            [fast[n] for n in encoder],
            grad_outputs=[torch.ones_like(loss), -g_head[0], -g_head[1]],
            retain_graph=True,
            create_graph=create_graph,
            allow_unused=True,
            materialize_grads=True,
        )
    by_name = dict(zip(encoder, g_enc))
    by_name[HEAD_WEIGHT], by_name[HEAD_BIAS] = g_head
    return [by_name[n] for n in keys]


def check_support_loss(value: float, source: str, step: int) -> float:
    if not math.isfinite(value):
        raise TrainingError(
            f"Non-finite support loss ({value}) on the episode from {source!r} at inner "
            f"step {step}: lower inner_learning_rate or check the inputs. No update was made."
        )
    return value


class DifferentiableSteps:
    """Meta-training: every step stays connected to the meta-parameters (second order through
    the inner gradients too). With step checkpointing, a step from the second on keeps only
    its input weights and is recomputed (forward and inner backward) in the outer backward,
    so memory no longer grows with every extra step."""

    def __init__(self, maml: nn.Module) -> None:
        self.maml = maml

    def __call__(self, episode: PreparedEpisode, snapshots: list[int], source: str):
        maml, keys = self.maml, list(episode.start)
        encoder_adapts = bool(maml.fast_names)

        def step(*values: torch.Tensor, first: bool = False) -> tuple[torch.Tensor, ...]:
            """The support loss and the stepped weights. The first step reuses the head init's
            features, and its head's partials do not follow the encoder (``inner_grads``)."""
            weights = dict(zip(keys, values))
            reuse = first or not encoder_adapts
            loss = sum(
                episode.part_loss(maml, i, weights, reuse) for i in range(len(episode.parts))
            )
            grads = inner_grads(loss, weights, keys, episode.create_graph, first=first)
            stepped = (weights[n] - maml.inner_lr(n) * g for n, g in zip(keys, grads))
            return (loss.detach(), *stepped)

        checkpointed = episode.create_graph and encoder_adapts and maml.config.step_checkpointing
        fast, metrics = episode.start, dict(episode.metrics)
        taken = {0: fast} if 0 in snapshots else {}
        for index in range(max(snapshots)):
            values = [fast[n] for n in keys]
            if checkpointed and index > 0:
                loss, *stepped = checkpoint(step, *values, use_reentrant=False)
            else:
                loss, *stepped = step(*values, first=index == 0)
            value = check_support_loss(loss.item(), source, index)
            fast = dict(zip(keys, stepped))
            if index == 0:
                metrics["support_loss_before"] = value
            if index + 1 in snapshots:
                taken[index + 1] = fast
        return taken, metrics


class DetachedSteps:
    """Adaptation: nothing is kept for a meta-gradient. Each support chunk backpropagates on its
    own (memory bounded whatever the support's size); the heads come back standard (raw
    features, what the export holds) at each step count in ``snapshots``. Not ``strict``: a
    non-finite loss ends the loop, and the later snapshots are missing."""

    def __init__(self, maml: nn.Module) -> None:
        self.maml = maml

    def standard(self, episode: PreparedEpisode, weights: Weights) -> Weights:
        out = dict(weights)
        out[HEAD_WEIGHT], out[HEAD_BIAS] = episode.head.standard(
            weights[HEAD_WEIGHT], weights[HEAD_BIAS], episode.feature_norm
        )
        return out

    def __call__(
        self, episode: PreparedEpisode, snapshots: list[int], source: str, strict: bool = True
    ):
        maml, keys = self.maml, list(episode.start)
        reuse = not maml.fast_names
        fast, metrics = episode.start, dict(episode.metrics)
        taken = {0: self.standard(episode, fast)} if 0 in snapshots else {}
        for index in range(max(snapshots)):
            grads, value = None, 0.0
            for i in range(len(episode.parts)):
                leaf = {n: w.detach().requires_grad_() for n, w in fast.items()}
                loss = episode.part_loss(maml, i, leaf, reuse)
                part = inner_grads(loss, leaf, keys, False, first=False)
                grads = part if grads is None else [a + b for a, b in zip(grads, part)]
                value += loss.item()
            if not math.isfinite(value) and not strict:
                break
            check_support_loss(value, source, index)
            with torch.no_grad():
                fast = {n: fast[n] - _as_float(maml.inner_lr(n)) * g for n, g in zip(keys, grads)}
            if index == 0:
                metrics["support_loss_before"] = value
            if index + 1 in snapshots:
                taken[index + 1] = self.standard(episode, fast)
        return taken, metrics


def _as_float(value) -> float | torch.Tensor:
    return value.detach() if isinstance(value, torch.Tensor) else value
