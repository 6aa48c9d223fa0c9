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
