"""The pool in an evaluation: ``maml+pool``, ``maml-base+pool`` and ``logreg+pool``, each
the method of that name plus the same self-training and k-fold rule as ``adapt``, so a
table shows every method with and without the pool on the same tasks.

The pool of a task comes from the runner's ``unlabeled_pool`` (a ``TaskPools``): a fixed
list of texts (the fixed-shot protocol), or, per episode, texts of the episode's classes
that are neither support nor query, with a share drawn from the dataset's other classes
as distractors. An episode's pool is seeded by its support texts, so every method reads
the same one."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.labels import label_name_text
from ..errors import ConfigError
from ..evaluation.methods import LogReg, Runner, Task, register_method
from ..meta.maml import HEAD_BIAS, HEAD_WEIGHT
from .adaptation import head_fit
from .arguments import UnlabeledArguments
from .self_training import check_pool, self_train


@dataclass
class TaskPools:
    """Where a task's unlabeled texts come from: ``texts`` (fixed) or ``source`` (per
    episode, ``size`` texts, ``distractor_share`` of them from other classes)."""

    options: UnlabeledArguments
    texts: Sequence[str] | None = None
    source: object | None = None  # a TaskSource
    size: int = 0
    distractor_share: float = 0.0

    def pool_for(self, task: Task) -> list[str]:
        taken = set(task.support_texts) | set(task.query_texts)
        if self.texts is not None:
            return [t for t in self.texts if t not in taken]
        digest = hashlib.sha256("\n".join(task.support_texts).encode()).hexdigest()
        rng = random.Random(int(digest[:16], 16))
        names = set(task.label_names or ())
        texts, labels = self.source.texts, self.source.labels
        inside = [t for t, y in zip(texts, labels) if y in names and t not in taken]
        outside = [t for t, y in zip(texts, labels) if y not in names]
        distractors = min(len(outside), round(self.size * self.distractor_share))
        pool = rng.sample(inside, min(len(inside), self.size - distractors))
        return pool + rng.sample(outside, distractors)


def _pools(runner: Runner, method: str) -> TaskPools:
    pools = getattr(runner, "unlabeled_pool", None)
    if pools is None:
        raise ConfigError(
            f"Method {method!r} reads an unlabeled pool: give --unlabeled_file (fixed-shot) or "
            "--episode_pool N (episodic)."
        )
    return pools


class _AdaptationWithPool:
    adaptation, zero_shot = True, False

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        pools = _pools(runner, self.name)
        model = runner.model
        fast, metrics = model.adapt_weights(
            task.support_texts, task.support_labels, task.n_way, label_names=task.label_names
        )
        if set(fast) - {HEAD_WEIGHT, HEAD_BIAS}:
            raise ConfigError(
                f"{self.name}: this run adapts encoder weights (inner_steps > 0); the pool "
                "methods self-train the head on frozen features. Evaluate with --inner_steps 0."
            )
        feats = model.features(task.support_texts).float()
        labels = torch.as_tensor(task.support_labels, dtype=torch.long)
        weights = torch.ones(len(labels))
        if metrics.get("label_names_used") and task.label_names is not None:
            names = model.features([label_name_text(n) for n in task.label_names]).float()
            feats = torch.cat([feats, names])
            labels = torch.cat([labels, torch.arange(task.n_way)])
            name_weight = model.config.label_name_weight
            weights = torch.cat([weights, torch.full((task.n_way,), name_weight)])
        is_name = torch.arange(len(labels)) >= len(task.support_labels)
        head = model.maml.episode_head(model.config.adaptation_head_init)
        fit = head_fit(head, task.n_way)
        rows = (feats, labels, weights, is_name)
        scorer = _self_trained(fit, rows, task, pools, model.features)
        if scorer is None:  # the pool kept out: the adapted head, as the plain method scores
            return model.logits(fast, list(task.query_texts)).argmax(-1).cpu().numpy()
        return scorer(model.features(task.query_texts).float()).argmax(-1).numpy()


def _self_trained(fit, rows, task, pools, features):
    """The head self-trained on the task's pool, or None where there is no pool or the
    k-fold rule keeps it out (the method's plain prediction stands then)."""
    feats, labels, weights, is_name = rows
    options = pools.options
    texts = pools.pool_for(task)
    if not texts:
        return None
    pool = features(texts).float()
    if options.pool_rule == "kfold":
        check = check_pool(fit, feats, labels, weights, is_name, pool, task.n_way, options)
        if not check.helps:
            return None
    scorer, _ = self_train(fit, feats, labels, weights, pool, task.n_way, options)
    return scorer


@register_method
class MamlWithPool(_AdaptationWithPool):
    name = "maml+pool"


@register_method
class MamlBaseWithPool(_AdaptationWithPool):
    """Runs on the encoder before meta-training, as ``maml-base``: the pool's meta-value."""

    name, runs_on = "maml-base+pool", "start"


@register_method
class LogRegWithPool:
    """The logistic-regression baseline (scikit-learn, mean-pooled normalised embeddings,
    no label names) self-trained on the pool by the same rule."""

    name, adaptation, zero_shot = "logreg+pool", False, False
    requires = LogReg.requires

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        pools = _pools(runner, self.name)
        baseline = LogReg()

        def features(texts):
            return F.normalize(runner.model.features(texts, None, "mean").float(), dim=-1)

        def fit(x, y, w):
            classifier = baseline.fit(runner, x, y.numpy(), w.numpy())
            return lambda f: torch.as_tensor(classifier.predict_log_proba(f.numpy()))

        labels = torch.as_tensor(task.support_labels, dtype=torch.long)
        rows = (features(task.support_texts), labels, torch.ones(len(labels)))
        rows += (torch.zeros(len(labels), dtype=torch.bool),)
        scorer = _self_trained(fit, rows, task, pools, features)
        if scorer is None:  # the pool kept out: the baseline itself
            return baseline.predict(runner, task)
        return scorer(features(task.query_texts)).argmax(-1).numpy()
