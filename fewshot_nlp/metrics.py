"""Classification metrics as an ``evaluate.Metric``: the evaluate API, without the Hub.

``evaluate.load("accuracy")`` fetches its script from the Hub; a ``Metric`` subclass
shipped here runs through the same API (``compute``, ``add_batch``, ``combine``) offline.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np


class FewShotClassificationMetric(evaluate.Metric):
    """Accuracy and macro-F1 over the labels present in predictions or references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Accuracy and macro-averaged F1 for single-label classification.",
            citation="",
            inputs_description="predictions and references: integer class ids.",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        pred, ref = np.asarray(predictions), np.asarray(references)
        f1s = []
        for label in np.union1d(pred, ref):
            tp = np.sum((pred == label) & (ref == label))
            denominator = np.sum(pred == label) + np.sum(ref == label)
            f1s.append(2 * tp / denominator if denominator else 0.0)
        return {"accuracy": float(np.mean(pred == ref)), "f1_macro": float(np.mean(f1s))}


def classification_metric() -> FewShotClassificationMetric:
    return FewShotClassificationMetric(keep_in_memory=True)


class OutOfScopeMetric(evaluate.Metric):
    """In-scope accuracy and out-of-scope detection in one pass.

    ``references`` and ``predictions`` use -1 for out-of-scope (a rejected text is predicted
    -1); ``scores`` are in-scope confidences (higher: more in-scope), for the threshold-free
    measures: AUROC of in-scope against out-of-scope, and the share of out-of-scope texts
    accepted at the threshold that accepts 95 % of in-scope ones (FPR at 95 % TPR).
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Out-of-scope detection: in-scope accuracy, recall, precision, AUROC.",
            citation="",
            inputs_description="predictions, references: class ids, -1 for out-of-scope; "
            "scores: in-scope confidence.",
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "scores": datasets.Value("float64"),
                }
            ),
        )

    def _compute(self, predictions, references, scores) -> dict[str, float]:
        pred, ref, score = np.asarray(predictions), np.asarray(references), np.asarray(scores)
        inside, outside = ref >= 0, ref < 0
        rejected = pred < 0
        result = {"in_scope_accuracy": float(np.mean(pred[inside] == ref[inside]))}
        if outside.any():
            result["oos_recall"] = float(np.mean(rejected[outside]))
            result["oos_precision"] = float(np.mean(outside[rejected])) if rejected.any() else 0.0
            result["auroc"] = auroc(score[inside], score[outside])
            cut = np.quantile(score[inside], 0.05)  # 95 % of in-scope texts score >= cut
            result["fpr_at_95_tpr"] = float(np.mean(score[outside] >= cut))
        return result


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U)."""
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    n_pos, n_neg = len(positive), len(negative)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def out_of_scope_metric() -> OutOfScopeMetric:
    return OutOfScopeMetric(keep_in_memory=True)
