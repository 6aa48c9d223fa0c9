"""Self-training on features, whatever fits the head: the pool labelled by the current
head, the most confident texts of each predicted class added at a lower weight, the head
refitted; and the k-fold rule that decides from the labelled examples alone whether the
pool helps. Everything here reads features (no encoder pass), so it serves ``adapt`` and
every evaluation method alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .arguments import UnlabeledArguments

Scorer = Callable[[torch.Tensor], torch.Tensor]  # features -> class scores (logits)
Fit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Scorer]  # (x, y, weights)


@dataclass
class PseudoLabels:
    """The pool rows the last round kept: their indices in the pool and their classes."""

    index: torch.Tensor
    labels: torch.Tensor
    weight: float


def self_train(
    fit: Fit,
    features: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    pool: torch.Tensor,
    n_way: int,
    args: UnlabeledArguments,
) -> tuple[Scorer, PseudoLabels]:
    """The head after ``args.self_training_rounds`` rounds, and the pseudo-labels it was
    last fitted with. Round r of R keeps, per predicted class, the most confident
    ``share * len(pool) / n_way * r / R`` texts (class-balanced, so a class the first head
    favours does not swallow the pool)."""
    scorer = fit(features, labels, weights)
    rounds = args.self_training_rounds
    chosen = PseudoLabels(torch.zeros(0, dtype=torch.long), labels.new_zeros(0), 0.0)
    for r in range(1, rounds + 1):
        take = max(1, int(args.pseudo_label_share * len(pool) / n_way * r / rounds))
        chosen = _most_confident(scorer(pool), n_way, take, args.pseudo_label_weight)
        scorer = fit(
            torch.cat([features, pool[chosen.index]]),
            torch.cat([labels, chosen.labels.to(labels)]),
            torch.cat([weights, torch.full((len(chosen.index),), chosen.weight).to(weights)]),
        )
    return scorer, chosen


def _most_confident(scores: torch.Tensor, n_way: int, take: int, weight: float) -> PseudoLabels:
    confidence, predicted = scores.float().softmax(-1).max(-1)
    picked = []
    for c in range(n_way):
        members = (predicted == c).nonzero().flatten()
        order = confidence[members].argsort(descending=True)
        picked.append(members[order[:take]])
    index = torch.cat(picked)
    return PseudoLabels(index, predicted[index], weight)


@dataclass
class PoolCheck:
    """The k-fold comparison: held-out accuracy over the labelled examples without and with
    the pool (None where it could not be run, with the reason)."""

    folds: int
    held_out: int
    accuracy_without: float | None = None
    accuracy_with: float | None = None
    reason: str | None = None
    min_accuracy: float = 0.0

    @property
    def helps(self) -> bool:
        """The rule: the head without the pool is good enough for its pseudo-labels to teach
        (``min_accuracy`` held out), and the pool does not lower the held-out accuracy."""
        if self.accuracy_with is None:
            return False
        confident = self.accuracy_without >= self.min_accuracy
        return confident and self.accuracy_with >= self.accuracy_without

    def to_dict(self) -> dict:
        return {
            "folds": self.folds,
            "held_out": self.held_out,
            "accuracy_without": self.accuracy_without,
            "accuracy_with": self.accuracy_with,
            "reason": self.reason,
            "min_accuracy": self.min_accuracy,
        }


def check_pool(
    fit: Fit,
    features: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    is_name: torch.Tensor,
    pool: torch.Tensor,
    n_way: int,
    args: UnlabeledArguments,
) -> PoolCheck:
    """Held-out accuracy of the labelled examples, fold by fold, fitted without and with the
    pool (self-trained by the same rule); ``helps`` applies the rule to them. An example is
    held out only if its class keeps a row in the fold's fit (another example, or its label
    name): with one example per class and no names there is nothing to hold out, and the
    check says so."""
    real = (~is_name).nonzero().flatten()
    keeps = torch.bincount(labels, minlength=n_way)  # rows per class, names included
    fold_of = spread_folds(labels[real], n_way, args.pool_folds)
    fold_of[keeps[labels[real]] < 2] = -1  # never held out: its class would have no row
    held = int((fold_of >= 0).sum())
    folds = min(args.pool_folds, held)
    if folds < 2:
        return PoolCheck(
            folds=0,
            held_out=0,
            reason="no labelled example can be held out (one per class and no label names)",
        )
    fold_of[fold_of >= folds] %= folds
    hits = {"without": 0, "with": 0}
    for fold in range(folds):
        out = real[fold_of == fold]
        if not len(out):
            continue
        train = torch.ones(len(labels), dtype=torch.bool)
        train[out] = False
        x, y, w = features[train], labels[train], weights[train]
        without = fit(x, y, w)
        with_pool, _ = self_train(fit, x, y, w, pool, n_way, args)
        truth = labels[out]
        hits["without"] += int((without(features[out]).argmax(-1) == truth).sum())
        hits["with"] += int((with_pool(features[out]).argmax(-1) == truth).sum())
    return PoolCheck(
        folds=folds,
        held_out=held,
        accuracy_without=hits["without"] / held,
        accuracy_with=hits["with"] / held,
        min_accuracy=args.min_held_out_accuracy,
    )


def spread_folds(labels: torch.Tensor, n_way: int, folds: int) -> torch.Tensor:
    """Each example's fold, classes spread round-robin with the count running on from one
    class to the next (seeded shuffle), so that one example per class still fills every
    fold rather than all landing in the first."""
    generator = torch.Generator().manual_seed(0)
    fold_of = torch.empty_like(labels)
    position = 0
    for c in torch.randperm(n_way, generator=generator).tolist():
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold_of[members] = (position + torch.arange(len(members))) % folds
        position += len(members)
    return fold_of
