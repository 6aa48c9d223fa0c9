"""Out-of-scope evaluation: adapt on a few-shot file, score an in-scope test file plus texts
of no class, with every method's threshold chosen on the support set alone.

``maml`` / ``maml-base`` export a classifier with the rejection label (``adapt(...,
unknown_label=...)``) and are scored as a user would run it: the export's own outputs. The
baselines are thresholded by the same rule on their own held-out support scores:
``logreg`` by its top probability, ``prototype`` by the cosine to the nearest class mean.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..classifier.adaptation import adapt
from ..classifier.arguments import DEFAULT_MAX_IN_SCOPE_LOSS, AdaptationArguments
from ..classifier.record import AdaptationRecord
from ..classifier.rejection import (
    REJECTION_FOLDS,
    check_rejection_support,
    choose_threshold,
    expected_calibration_error,
    unknown_texts,
)
from ..data.sources import TaskSource
from ..errors import ConfigError
from ..meta.cross_validation import cv_folds, stratified_folds
from ..metrics import out_of_scope_metric
from ..modeling.head import class_prototypes
from ..modeling.scoring import text_logits
from .methods import get_method
from .runner import MethodRunner, method_runners

OUT_OF_SCOPE_METHODS = ("maml", "maml-base", "logreg", "prototype")
DEFAULT_OUT_OF_SCOPE_METHODS = ("maml", "logreg", "prototype")


def evaluate_out_of_scope(
    model,
    train: TaskSource,
    test: TaskSource,
    outside: Sequence[str],
    *,
    methods: Sequence[str] = DEFAULT_OUT_OF_SCOPE_METHODS,
    baseline_model=None,
    unknown_label: str = "out_of_scope",
    max_in_scope_loss: float | None = None,
    unknown_data=None,
) -> list[dict]:
    """One row per method: in-scope accuracy with and without rejection, out-of-scope
    recall / precision, AUROC, FPR at 95 % TPR, calibration error on the in-scope test.
    ``unknown_data``: out-of-scope examples for choosing the thresholds (never the test's).
    """
    bad = [m for m in methods if m not in OUT_OF_SCOPE_METHODS]
    if bad:
        raise ConfigError(f"Out-of-scope evaluation runs {list(OUT_OF_SCOPE_METHODS)}; got {bad}.")
    if not outside:
        raise ConfigError("The out-of-scope evaluation needs out-of-scope test texts.")
    names = train.label_names
    check_rejection_support({n: len(train.label_index[n]) for n in names}, unknown_label)
    runners = method_runners(model, baseline_model, methods)
    ids = {name: i for i, name in enumerate(names)}
    references = np.asarray([ids.get(y, -1) for y in test.labels] + [-1] * len(outside))
    texts = list(test.texts) + list(outside)
    unknown = unknown_texts(unknown_data, names) if unknown_data is not None else None
    rows = []
    for method in methods:
        start = time.perf_counter()
        if get_method(method).adaptation:
            scored = _adapted(
                runners[method], train, texts, unknown_label, max_in_scope_loss, unknown
            )
        else:
            scored = _baseline(
                runners[method], method, train, ids, texts, max_in_scope_loss, unknown
            )
        rows.append(_row(scored, references, runners[method].path, test.name, method))
        rows[-1]["out_of_scope_examples"] = len(outside)
        rows[-1]["seconds"] = time.perf_counter() - start
    return rows


def _row(scored: Scored, references: np.ndarray, model, dataset: str, method: str) -> dict:
    """One method's measures: the detection metric, accuracy without rejection, ECE."""
    result = out_of_scope_metric().compute(
        predictions=scored.predictions, references=references, scores=scored.scores
    )
    inside = references >= 0
    result["in_scope_accuracy_without_rejection"] = float(
        np.mean(scored.plain[inside] == references[inside])
    )
    for key, probabilities in (
        ("calibration_error", scored.probabilities),
        ("calibration_error_uncalibrated", scored.uncalibrated),
    ):
        if probabilities is not None:
            result[key] = expected_calibration_error(probabilities[inside], references[inside])
    return {
        "protocol": "out-of-scope",
        "model": model,
        "dataset": dataset,
        "method": method,
        "in_scope_examples": int(inside.sum()),
        "threshold": scored.threshold,
        **result,
        **({"rejection": scored.record} if scored.record else {}),
    }


@dataclass
class Scored:
    """A method's answers on the test texts: predictions (-1: rejected), in-scope scores,
    the predictions without rejection, and probabilities where the method has them."""

    predictions: np.ndarray
    scores: np.ndarray
    plain: np.ndarray
    threshold: float
    probabilities: np.ndarray | None = None
    uncalibrated: np.ndarray | None = None
    record: dict | None = None


def _adapted(runner: MethodRunner, train, texts, label, max_in_scope_loss, unknown) -> Scored:
    """The exported classifier's own outputs (the rejection label is its last one)."""
    model = runner.model
    args = AdaptationArguments(
        unknown_label=label, max_in_scope_loss=max_in_scope_loss, unknown_data=unknown
    )
    classifier = adapt(model, train, args)
    logits = text_logits(classifier, model.tokenizer, texts, max_length=model.collator.max_length)
    classes = logits[:, :-1]
    predictions = logits.argmax(-1).numpy()
    predictions[predictions == logits.shape[1] - 1] = -1
    record = AdaptationRecord.of(classifier).rejection
    return Scored(
        predictions=predictions,
        scores=classes.max(-1).values.numpy(),
        plain=classes.argmax(-1).numpy(),
        threshold=record["threshold"],
        # what a user reads: the rejection label counts as a wrong answer in-scope
        probabilities=torch.softmax(logits, -1).numpy(),
        uncalibrated=torch.softmax(classes * record["temperature"], -1).numpy(),
        record=record,
    )


def _baseline(runner: MethodRunner, method, train, ids, texts, loss, unknown) -> Scored:
    """Held-out support scores (k-fold, as the adaptation's rejection) choose the threshold
    by the same rule; the model refitted on all of the support scores the test texts."""
    model = runner.model
    features = F.normalize(model.features(train.texts, None, "mean"), dim=-1)
    labels = torch.as_tensor([ids[y] for y in train.labels])
    n_way = len(ids)
    folds = cv_folds(model.config, labels, n_way, REJECTION_FOLDS)
    if folds < 2:
        raise ConfigError(
            f"Thresholding {method} on held-out support scores needs >= 2 examples per class."
        )
    fold_of = stratified_folds(labels, n_way, folds)
    held = torch.zeros(len(labels), n_way, dtype=torch.float64)
    outside = (
        None if unknown is None else F.normalize(model.features(unknown, None, "mean"), dim=-1)
    )
    outside_scores = []
    for fold in range(folds):
        train_rows, held_rows = fold_of != fold, fold_of == fold
        fit = _fit(runner, method, features[train_rows], labels[train_rows], n_way)
        held[held_rows] = fit(features[held_rows])
        if outside is not None:
            outside_scores.append(fit(outside).max(-1).values)
    correct = (held.argmax(-1) == labels).numpy()
    if loss is None and outside is None:
        loss = DEFAULT_MAX_IN_SCOPE_LOSS
    unknown_scores = torch.cat(outside_scores).numpy() if outside_scores else None
    threshold = choose_threshold(held.max(-1).values.numpy(), correct, loss, unknown_scores)
    query = F.normalize(model.features(texts, None, "mean"), dim=-1)
    scores = _fit(runner, method, features, labels, n_way)(query)
    best, plain = scores.max(-1)
    predictions = np.where(best.numpy() >= threshold, plain.numpy(), -1)
    return Scored(
        predictions=predictions,
        scores=best.numpy(),
        plain=plain.numpy(),
        threshold=threshold,
        probabilities=scores.numpy() if method == "logreg" else None,  # cosines are not
    )


def _fit(runner: MethodRunner, method: str, features, labels, n_way: int):
    """A scoring function of the support: logreg's probabilities, or the cosine to each
    class mean."""
    if method == "logreg":
        classifier = get_method("logreg").fit(runner, features, labels)
        columns = classifier.classes_

        def score(x):
            out = torch.zeros(len(x), n_way, dtype=torch.float64)
            out[:, torch.as_tensor(columns)] = torch.as_tensor(
                classifier.predict_proba(x.numpy()), dtype=torch.float64
            )
            return out

        return score
    means = F.normalize(class_prototypes(features, labels, n_way), dim=-1)
    return lambda x: (x @ means.T).double()


def format_table(rows: list[dict]) -> str:
    """One line per method: in-scope accuracy (with / without rejection), out-of-scope
    recall and precision, AUROC, FPR at 95 % TPR, calibration error."""
    lines = [
        f"{'method':<11}{'in-scope':>10}{'no reject':>11}{'oos recall':>12}{'oos prec.':>11}"
        f"{'AUROC':>8}{'FPR@95':>8}{'ECE':>7}"
    ]
    for row in rows:
        ece = row.get("calibration_error")
        lines.append(
            f"{row['method']:<11}{100 * row['in_scope_accuracy']:>10.2f}"
            f"{100 * row['in_scope_accuracy_without_rejection']:>11.2f}"
            f"{100 * row['oos_recall']:>12.2f}{100 * row['oos_precision']:>11.2f}"
            f"{row['auroc']:>8.4f}{100 * row['fpr_at_95_tpr']:>8.2f}"
            + (f"{ece:>7.3f}" if ece is not None else f"{'-':>7}")
        )
    return "\n".join(lines)
