"""The multi-label head: one logistic regression per label (class-balanced, as scikit-learn's
``class_weight="balanced"``), fitted on the support's sentence embeddings, the label names as
weighted positives, and mixtures of both (a text that says several things lies between the
texts that say each); a label is on at sigmoid >= 0.5, its threshold folded into its bias."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .arguments import MultiLabelArguments

GRID = torch.linspace(-4, 4, 33)  # logit offsets a k-fold threshold is chosen among
KFOLD_GAIN, KFOLD_SHRINK = 0.05, 0.5  # a threshold moves for >= 5 F1 points, half-way


@dataclass
class MultiLabelFit:
    """The head on the features it was fitted on (``weight`` rows, ``bias`` with the
    thresholds folded in), and what the support's k-fold held out said."""

    weight: torch.Tensor
    bias: torch.Tensor
    thresholds: list[float]
    held_out: dict | None = None
    notes: list[str] = field(default_factory=list)


def fit_multilabel_head(
    features: torch.Tensor,
    targets: torch.Tensor,
    name_features: torch.Tensor | None,
    args: MultiLabelArguments,
    *,
    normalized: bool,
) -> MultiLabelFit:
    """``features`` (examples, d) and ``targets`` (examples, labels) of the support;
    ``name_features`` (labels, d): the label names, or None."""
    weight, bias = _fit(features, targets, name_features, args, normalized)
    labels = targets.shape[1]
    thresholds = torch.zeros(labels)
    notes = []
    held_out = None
    counts = targets.sum(0)
    shown = counts[counts > 0]
    if len(shown) and int(shown.min()) >= 2:
        scores = _held_out_scores(features, targets, name_features, args, normalized)
        if args.threshold == "kfold":
            thresholds = _kfold_thresholds(scores, targets)
        held_out = multilabel_scores(scores > thresholds, targets.bool())
        held_out["folds"] = min(args.folds, len(features))
    else:
        notes.append(
            "Fewer than 2 examples of some label: no k-fold over the shots; every label is on "
            "at sigmoid >= 0.5 of the class-balanced fit."
        )
    return MultiLabelFit(weight, bias - thresholds, thresholds.tolist(), held_out, notes)


def mixtures(features, targets, count: int, normalized: bool, generator):
    """``count`` mixtures of 1-3 rows: their features summed (then normalised) or averaged,
    their label sets united."""
    n = len(features)
    if not count or not n:
        return features[:0], targets[:0]
    sizes = torch.randint(1, min(3, n) + 1, (count,), generator=generator)
    xs, ys = [], []
    for size in sizes.tolist():
        rows = torch.randperm(n, generator=generator)[:size]
        mixed = features[rows].sum(0)
        xs.append(F.normalize(mixed, dim=-1) if normalized else mixed / size)
        ys.append(targets[rows].amax(0))
    return torch.stack(xs), torch.stack(ys)


def _fit(features, targets, name_features, args, normalized):
    generator = torch.Generator().manual_seed(args.seed)
    x, y = features.double(), targets.double()
    w = torch.ones(len(x), dtype=torch.float64)
    pool_x, pool_y = x, y
    if name_features is not None:
        names = name_features.double()
        eye = torch.eye(targets.shape[1], dtype=torch.float64)
        pool_x, pool_y = torch.cat([x, names]), torch.cat([y, eye])
        x, y = pool_x, pool_y
        w = torch.cat([w, torch.full((len(names),), float(args.label_name_weight))])
    mx, my = mixtures(pool_x, pool_y, args.mixtures, normalized, generator)
    x, y = torch.cat([x, mx]), torch.cat([y, my])
    w = torch.cat([w, torch.ones(len(mx), dtype=torch.float64)])
    return one_vs_rest(x, y, w, args.regularization)


def one_vs_rest(x, y, sample_weight, c: float):
    """Every label's L2-regularised logistic regression at once (independent problems):
    ``c * sum(weight * class_weight * log-loss) + |w|^2 / 2`` by L-BFGS, as scikit-learn."""
    n, labels = y.shape
    positives = y.sum(0)
    balanced = torch.where(
        y > 0,
        n / (2 * positives.clamp(min=1)),
        n / (2 * (n - positives).clamp(min=1)),
    )
    one_class = (positives == 0) | (positives == n)
    balanced[:, one_class] = 1.0
    weights = sample_weight[:, None] * balanced
    weight = torch.zeros(labels, x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(labels, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=500, tolerance_grad=1e-8, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        logits = x @ weight.T + bias
        loss = F.binary_cross_entropy_with_logits(logits, y, weight=weights, reduction="sum")
        loss = c * loss + 0.5 * (weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach().float(), bias.detach().float()


def _held_out_scores(features, targets, name_features, args, normalized):
    """Each support example's logits from a head fitted without its fold."""
    n = len(features)
    folds = min(args.folds, n)
    generator = torch.Generator().manual_seed(args.seed + 1)
    fold = torch.randperm(n, generator=generator) % folds
    scores = torch.zeros(targets.shape)
    for f in range(folds):
        train = fold != f
        weight, bias = _fit(features[train], targets[train], name_features, args, normalized)
        scores[~train] = features[~train].float() @ weight.T + bias
    return scores


def _kfold_thresholds(scores, targets):
    """Per label, the logit offset of best held-out F1, taken half-way, where it gains
    >= ``KFOLD_GAIN`` over 0 (moving it otherwise measured worse on unseen texts)."""
    out = torch.zeros(targets.shape[1])
    truth = targets.bool()
    for j in range(targets.shape[1]):
        at_zero = _f1(scores[:, j] > 0, truth[:, j])
        gains = [(_f1(scores[:, j] > t, truth[:, j]), -abs(float(t)), float(t)) for t in GRID]
        best, _, offset = max(gains)
        if best >= at_zero + KFOLD_GAIN:
            out[j] = KFOLD_SHRINK * offset
    return out


def _f1(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    tp = float((predicted & truth).sum())
    denominator = float(predicted.sum() + truth.sum())
    return 2 * tp / denominator if denominator else 0.0


def multilabel_scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict:
    """micro-F1, macro-F1 (over labels with an example or a prediction), exact match (subset
    accuracy) and each label's F1, from (texts, labels) booleans."""
    per_label = [_f1(predicted[:, j], truth[:, j]) for j in range(truth.shape[1])]
    counted = [f for j, f in enumerate(per_label) if truth[:, j].any() or predicted[:, j].any()]
    return {
        "micro_f1": _f1(predicted.flatten(), truth.flatten()),
        "macro_f1": sum(counted) / len(counted) if counted else 0.0,
        "exact_match": float((predicted == truth).all(1).float().mean()) if len(truth) else 0.0,
        "per_label_f1": per_label,
    }
