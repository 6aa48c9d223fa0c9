"""Cross-validation on a support set: k-fold folds stratified by class, held-out logits at
several inner-step counts, and the step count they choose. ``adapt`` picks its inner steps
with it; the rejection threshold is read off the same held-out logits."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

logger = logging.getLogger(__name__)


def choose_inner_steps(
    maml: nn.Module, support, labels, n_way: int, name_inputs, metrics: dict
) -> int:
    """Inner steps among ``adapt_step_candidates``, by k-fold cross-validation on the support
    set (ties go to fewer steps). With fewer than 2 examples in some class there is nothing to
    hold out: falls back to the meta-trained ``inner_steps`` and says so in ``metrics``."""
    config = maml.config
    candidates = sorted(set(config.adapt_step_candidates))
    if len(candidates) == 1:
        return candidates[0]
    folds = cv_folds(config, labels, n_way)
    if folds < 2:
        metrics["cv_fallback"] = (
            f"cross-validation needs >= 2 examples per class, the smallest class has "
            f"{int(torch.bincount(labels.cpu(), minlength=n_way).min())}: used the "
            f"meta-trained inner_steps={config.inner_steps}"
        )
        logger.debug(metrics["cv_fallback"])
        return config.inner_steps
    held, _ = cross_validated_logits(maml, support, labels, n_way, name_inputs, candidates)
    right = {s: (held[s].argmax(-1) == labels.cpu()) & held[s].isfinite().all(-1) for s in held}
    correct = {s: int(right[s].sum()) for s in candidates}
    metrics["cv_accuracy"] = {s: correct[s] / labels.shape[0] for s in candidates}
    metrics["cv_folds"] = folds
    return max(candidates, key=lambda s: (correct[s], -s))


def cv_folds(config, labels: torch.Tensor, n_way: int, most: int | None = None) -> int:
    """How many folds the support allows, at most ``most`` (default ``adapt_cv_folds``;
    < 2: no cross-validation possible)."""
    if not labels.numel():
        return 0
    counts = torch.bincount(labels.cpu(), minlength=n_way)
    return min(most or config.adapt_cv_folds, int(counts.min()))


def cross_validated_logits(
    maml: nn.Module,
    support: dict[str, torch.Tensor],
    labels: torch.Tensor,
    n_way: int,
    name_inputs,
    snapshots: list[int],
    others: dict[str, torch.Tensor] | None = None,
    folds: int | None = None,
    *,
    normalized: bool = False,
) -> tuple[dict[int, torch.Tensor], dict[int, list[torch.Tensor]]]:
    """Held-out logits of every support example (the standard head, what an export
    computes), each from the fold that left it out, at each step count of ``snapshots`` (NaN
    rows where a fold stopped early); and the logits of ``others`` (texts of no class) under
    every fold's weights. ``folds``: default ``cv_folds``. ``normalized``: the logits a
    normalised head gives (as if every feature had the support's mean norm)."""
    folds = folds or cv_folds(maml.config, labels, n_way)
    fold_of = stratified_folds(labels, n_way, folds)
    # NaN where a fold's loop ended before that step count (a non-finite support loss)
    held_logits = {s: torch.full((labels.shape[0], n_way), math.nan) for s in snapshots}
    other_logits: dict[int, list[torch.Tensor]] = {s: [] for s in snapshots}
    for fold in range(folds):
        train, held = fold_of != fold, fold_of == fold
        taken, fold_metrics = maml.inner_loop(
            {k: v[train] for k, v in support.items()},
            labels[train],
            n_way,
            snapshots,
            maml.config.adaptation_head_init,
            name_inputs,
            source="cross-validation",
            meta_grad=False,
            strict=False,
        )
        held_inputs = {k: v[held] for k, v in support.items()}
        norm = fold_metrics.get("feature_norm") if normalized else None
        with torch.no_grad():
            for steps, fast in taken.items():
                held_logits[steps][held.cpu()] = _scores(maml, fast, held_inputs, norm)
                if others is not None:
                    other_logits[steps].append(_scores(maml, fast, others, norm))
    return held_logits, other_logits


def _scores(maml: nn.Module, fast, inputs, norm: float | None) -> torch.Tensor:
    """Logits of the standard head; with ``norm``, as the normalised head gives them (the
    standard head divides by the support's mean norm: undone per example)."""
    feats = maml.features(fast, inputs)
    logits = maml.logits(feats, fast).float()
    if norm:
        logits = logits * (norm / feats.float().norm(dim=-1, keepdim=True))
    return logits.cpu()


def stratified_folds(labels: torch.Tensor, n_way: int, folds: int) -> torch.Tensor:
    """Each example's fold: every class spread over the folds (seeded shuffle)."""
    generator = torch.Generator().manual_seed(0)
    fold_of = torch.empty_like(labels, device="cpu")
    for c in range(n_way):
        members = (labels.cpu() == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold_of[members] = torch.arange(len(members)) % folds
    return fold_of.to(labels.device)
