"""The fixed multi-label protocol: support sets (a file, or K-shot sets drawn greedily from a
pool so that every label has >= K positives: the same sets for every method) scored on a test
file by micro-F1, macro-F1, exact match and per-label F1, mean ± 95 % CI over the seeds.

Methods: ``maml`` (our multi-label adaptation on the run), ``maml-base`` (the same on the
encoder before meta-training: the meta-value), ``logreg`` (one-vs-rest logistic regression on
the frozen base encoder's embeddings, what a user tries first), ``logreg-names`` (the same
with each label's name as one more positive), ``setfit`` (SetFit's one-vs-rest, when
installed)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import datasets
import evaluate
import numpy as np
import torch

from ..data.labels import label_name_text
from ..errors import ConfigError
from ..evaluation.protocols import summarize
from .adaptation import fit_on_run, read_features, run_for
from .arguments import DEFAULT_METHODS, METHODS, MultiLabelArguments
from .data import MultiLabelData
from .head import multilabel_scores

LOGREG_C = 10.0  # as the single-label logreg baseline


class MultiLabelMetric(evaluate.Metric):
    """micro-F1, macro-F1, exact match and per-label F1 through the evaluate API (offline)."""

    def _info(self) -> evaluate.MetricInfo:
        labels = datasets.Sequence(datasets.Value("int64"))
        return evaluate.MetricInfo(
            description="Multi-label F1 (micro, macro, per label) and exact match.",
            citation="",
            inputs_description="predictions, references: 0/1 lists, one entry per label.",
            features=datasets.Features({"predictions": labels, "references": labels}),
        )

    def _compute(self, predictions, references) -> dict:
        predicted = torch.tensor(np.asarray(predictions)).bool()
        truth = torch.tensor(np.asarray(references)).bool()
        return multilabel_scores(predicted, truth)


def greedy_support(pool: MultiLabelData, k_shot: int, seed: int) -> MultiLabelData:
    """Rows of ``pool`` in a seeded order, each kept while it adds a label still short of
    ``k_shot`` positives, until every label has them (a label the pool lacks stays short)."""
    order = list(range(len(pool.texts)))
    random.Random(seed).shuffle(order)
    count = dict.fromkeys(pool.names, 0)
    keep = []
    for i in order:
        if all(c >= k_shot for c in count.values()):
            break
        if any(count[label] < k_shot for label in pool.labels[i]):
            keep.append(i)
            for label in pool.labels[i]:
                count[label] += 1
    return MultiLabelData(
        [pool.texts[i] for i in keep], [pool.labels[i] for i in keep], list(pool.names)
    )


def evaluate_multilabel(
    model,
    test: MultiLabelData,
    *,
    train: MultiLabelData | None = None,
    pool: MultiLabelData | None = None,
    k_shots: Sequence[int] = (),
    seeds: int = 5,
    methods: Sequence[str] = DEFAULT_METHODS,
    args: MultiLabelArguments | None = None,
    baseline_model=None,
) -> list[dict]:
    """One row per method and support setting (``train``, or ``k_shots`` drawn from
    ``pool`` under ``seeds`` seeds). ``model``: a ``FewShotModel`` (features cached);
    ``baseline_model``: the frozen encoder the baselines read (default: its base)."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"Unknown multi-label methods {unknown}; choose from {METHODS}.")
    if (train is None) == (pool is None or not k_shots):
        raise ConfigError("Give either a fixed train set, or a pool with k_shots to draw from.")
    args = args or MultiLabelArguments()
    run = run_for(model, args)
    base = baseline_model or run.without_meta_training()
    readers = {"maml": run, "maml-base": run_for(base, args)}
    settings = [("file", [train])] if train is not None else []
    for k in k_shots if train is None else ():
        settings.append((k, [greedy_support(pool, k, seed) for seed in range(seeds)]))
    truth = test.matrix().bool()
    rows, read = [], {}  # read: the test texts' features per reader, computed once
    for shots, supports in settings:
        for method in methods:
            scores = [
                _score(method, readers, base, support, test, args, read) for support in supports
            ]
            metric = MultiLabelMetric(keep_in_memory=True)
            results = [
                metric.compute(predictions=p.int().tolist(), references=truth.int().tolist())
                for p in scores
            ]
            row = {"method": method, "k_shot": shots, "seeds": len(supports)}
            for key in ("micro_f1", "macro_f1", "exact_match"):
                row[key] = summarize([r[key] for r in results])
            per_label = np.mean([r["per_label_f1"] for r in results], axis=0)
            row["per_label_f1"] = dict(zip(test.names, per_label.tolist()))
            row["support_size"] = float(np.mean([len(s.texts) for s in supports]))
            rows.append(row)
    return rows


def _score(method, readers, base, support, test, args, read: dict) -> torch.Tensor:
    """(test texts, labels) booleans: the labels ``method`` turns on."""
    if support.names != test.names:
        support = MultiLabelData(support.texts, support.labels, list(test.names))
    if method in readers:
        run = readers[method]
        fit, _, _ = fit_on_run(run, support, args)
        if method not in read:
            read[method] = read_features(run, test.texts, run.maml.mean_pooling)
        return read[method] @ fit.weight.T + fit.bias > 0
    if method == "setfit":
        return _setfit(base, support, test)
    if "base" not in read:
        read["base"] = _embedding(base, test.texts)
    return _logreg(base, support, test, read["base"], names=method == "logreg-names")


def _embedding(base, texts: list[str]) -> torch.Tensor:
    """The frozen encoder's normalised mean-pooled embeddings (what the baselines read)."""
    return torch.nn.functional.normalize(base.features(texts, pooling="mean"), dim=-1)


def _logreg(base, support: MultiLabelData, test: MultiLabelData, query, names: bool):
    """scikit-learn's one-vs-rest logistic regression (C = 10, balanced classes, threshold
    0.5) on the frozen encoder's normalised mean-pooled embeddings."""
    from ..evaluation.methods import require_module

    linear_model = require_module("sklearn.linear_model", "logreg", "baselines", "scikit-learn")

    x, y = _embedding(base, support.texts).numpy(), support.matrix().numpy()
    if names:
        label_texts = [label_name_text(n) for n in test.names]
        x = np.concatenate([x, _embedding(base, label_texts).numpy()])
        y = np.concatenate([y, np.eye(len(test.names))])
    query = query.numpy()
    out = np.zeros((len(test.texts), len(test.names)), dtype=bool)
    for j in range(len(test.names)):
        if y[:, j].min() == y[:, j].max():  # one class only: that answer everywhere
            out[:, j] = bool(y[0, j])
            continue
        classifier = linear_model.LogisticRegression(
            C=LOGREG_C, class_weight="balanced", max_iter=1000
        )
        out[:, j] = classifier.fit(x, y[:, j]).predict(query) > 0
    return torch.from_numpy(out)


def _setfit(base, support: MultiLabelData, test: MultiLabelData) -> torch.Tensor:
    """SetFit's multi-label route (``multi_target_strategy="one-vs-rest"``) on the base
    encoder's checkpoint, with its default training arguments."""
    from ..evaluation.methods import require_module

    setfit = require_module("setfit", "setfit", "setfit", "setfit")
    from datasets import Dataset

    path = base.path or base.model.config._name_or_path
    model = setfit.SetFitModel.from_pretrained(path, multi_target_strategy="one-vs-rest")
    data = Dataset.from_dict({"text": support.texts, "label": support.matrix().int().tolist()})
    trainer = setfit.Trainer(model=model, train_dataset=data)
    trainer.train()
    return torch.as_tensor(np.asarray(model.predict(test.texts))).bool()
