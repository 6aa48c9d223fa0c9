"""The methods an evaluation compares, one class each behind one protocol, in one registry.

``maml`` is the model's own meta-learned adaptation; ``maml-base`` that same adaptation on
the encoder before meta-training (``maml`` minus it is the meta-value). The baselines are
what a user would try on the base encoder: ``logreg`` (logistic regression on frozen,
mean-pooled, L2-normalised embeddings), ``prototype`` (nearest class mean), ``finetune`` (a
standard fine-tuning recipe with a new head), ``setfit`` (with the ``setfit`` package) and,
at 0 shots, ``label-cosine`` (each text to its nearest label name).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..argument_parsing import help_field
from ..data.labels import label_name_text
from ..errors import ConfigError
from ..meta.maml import HEAD_BIAS, HEAD_WEIGHT
from ..modeling.head import class_prototypes


class Runner(Protocol):
    """What a method reads of ``runner.MethodRunner``: the loaded model and the baselines'
    settings (a protocol here, so that this module does not import the runner)."""

    model: Any
    path: str | None
    prototype_pooling: str
    prototype_distance: str
    logreg_c: float
    finetune_config: Any


@dataclass
class Task:
    """One few-shot task: a labelled support set and the queries to label."""

    support_texts: Sequence[str]
    support_labels: Sequence[int]
    n_way: int
    query_texts: Sequence[str]
    support_pairs: Sequence[str] | None = None
    query_pairs: Sequence[str] | None = None
    label_names: Sequence[str] | None = None


class FewShotMethod(Protocol):
    """``adaptation``: runs on the (meta-)model being evaluated, not on the base encoder
    (``runs_on = "start"``: on that model before meta-training); ``zero_shot``: has a 0-shot
    row (needs no support examples)."""

    name: str
    adaptation: bool
    zero_shot: bool

    def predict(self, runner: Runner, task: Task) -> np.ndarray: ...


METHOD_REGISTRY: dict[str, FewShotMethod] = {}


def get_method(name: str) -> FewShotMethod:
    """The registered method called ``name``, or an error listing those there are; a method
    whose package is not installed fails here too, before any model is loaded."""
    if name not in METHOD_REGISTRY:
        raise ConfigError(f"Unknown method {name!r}; choose from {tuple(METHOD_REGISTRY)}.")
    method = METHOD_REGISTRY[name]
    requires = getattr(method, "requires", None)  # (module, extra, pip package)
    if requires and importlib.util.find_spec(requires[0]) is None:
        require_module(requires[0], name, requires[1], requires[2])
    return method


def check_methods(methods: Sequence[str], k_shots: Sequence[int] = ()) -> None:
    """Every method known and installed, and a row at every shot count, before any model
    loads (at 0 shots only the methods that read label names have one)."""
    kinds = [get_method(m) for m in methods]
    if 0 in k_shots and not any(kind.zero_shot for kind in kinds):
        names = [m for m in METHOD_REGISTRY if METHOD_REGISTRY[m].zero_shot]
        raise ConfigError(
            f"k_shot 0 classifies by label names alone, and none of {list(methods)} does: "
            f"add one of {names} to the methods, or drop 0 from k_shot."
        )


def parse_episode_caps(max_episodes: Sequence[str] | None) -> dict[str, int]:
    """``METHOD=N`` pairs (``--max_episodes finetune=100``) as caps, checked against the
    methods there are."""
    caps = {}
    for item in max_episodes or []:
        name, _, value = item.partition("=")
        if name.strip() not in METHOD_REGISTRY or not value.strip().isdigit():
            raise ConfigError(
                f"--max_episodes {item!r}: give METHOD=N pairs, e.g. finetune=100 (methods: "
                f"{', '.join(METHOD_REGISTRY)})."
            )
        caps[name.strip()] = int(value)
    return caps


def register_method(cls):
    """Class decorator: one instance per name, in the order registered."""
    method = cls()
    METHOD_REGISTRY[method.name] = method
    return cls


@dataclass
class FinetuneConfig:
    """The fine-tuning baseline as ``transformers.Trainer`` runs it for a new head: AdamW on
    every weight, mini-batches, epochs, linear warm-up then decay, weight decay."""

    epochs: int = help_field("Passes over the support set.", default=10)
    batch_size: int = help_field("Support examples per step.", default=16)
    learning_rate: float = help_field("Peak AdamW learning rate.", default=5e-5)
    weight_decay: float = help_field("AdamW weight decay.", default=0.01)
    warmup_ratio: float = help_field("Share of steps warming up.", default=0.1)
    seed: int = help_field("Seed of the head init and batch order.", default=0)


def require_module(module: str, method: str, extra: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"Method {method!r} needs the `{package}` package, which is not installed: "
            f"pip install 'fewshot-nlp[{extra}]' (or pip install {package})."
        ) from error


class _Adaptation:
    adaptation, zero_shot = True, True

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        return runner.model.predict(
            task.support_texts,
            task.support_labels,
            task.n_way,
            task.query_texts,
            support_pairs=task.support_pairs,
            query_pairs=task.query_pairs,
            label_names=task.label_names,
        )


@register_method
class Maml(_Adaptation):
    name = "maml"


@register_method
class MamlBase(_Adaptation):
    """Runs on ``model.without_meta_training()`` (see ``method_runners``)."""

    name, runs_on = "maml-base", "start"


@register_method
class LogReg:
    """What a user writes in ten lines: scikit-learn on the frozen sentence embeddings."""

    name, adaptation, zero_shot = "logreg", False, False
    requires = ("sklearn", "baselines", "scikit-learn")

    def fit(self, runner: Runner, features: torch.Tensor, labels, weights=None):
        """The fitted scikit-learn classifier on (normalised) support features, each
        example at its ``weights`` (default 1)."""
        linear_model = require_module("sklearn.linear_model", "logreg", "baselines", "scikit-learn")
        classifier = linear_model.LogisticRegression(C=runner.logreg_c, max_iter=1000)
        sample_weight = None if weights is None else np.asarray(weights)
        return classifier.fit(features.numpy(), np.asarray(labels), sample_weight=sample_weight)

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        features = runner.model.features
        support = F.normalize(features(task.support_texts, task.support_pairs, "mean"), dim=-1)
        query = F.normalize(features(task.query_texts, task.query_pairs, "mean"), dim=-1)
        return self.fit(runner, support, task.support_labels).predict(query.numpy())


@register_method
class Prototype:
    name, adaptation, zero_shot = "prototype", False, False

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        model, pooling = runner.model, runner.prototype_pooling
        support = model.features(task.support_texts, task.support_pairs, pooling)
        query = model.features(task.query_texts, task.query_pairs, pooling)
        cosine = runner.prototype_distance == "cosine"
        if cosine:  # the class mean of unit vectors
            support, query = F.normalize(support, dim=-1), F.normalize(query, dim=-1)
        protos = class_prototypes(support, torch.as_tensor(task.support_labels), task.n_way)
        if cosine:
            return (query @ F.normalize(protos, dim=-1).T).argmax(-1).numpy()
        return (-torch.cdist(query, protos)).argmax(-1).numpy()


@register_method
class Finetune:
    name, adaptation, zero_shot = "finetune", False, False

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        model = runner.model
        support = model.encode(task.support_texts, task.support_pairs)
        labels = torch.as_tensor(task.support_labels)
        params, head = finetune(runner, support, labels, task.n_way)
        fast = {**params, HEAD_WEIGHT: head[0], HEAD_BIAS: head[1]}
        logits = model.logits(fast, list(task.query_texts), task.query_pairs)
        return logits.argmax(-1).cpu().numpy()


@register_method
class SetFit:
    name, adaptation, zero_shot = "setfit", False, False
    requires = ("setfit", "setfit", "setfit")  # checked by get_method

    def fit(self, runner: Runner, texts, labels, pairs):
        """A SetFit model trained on the support, from the base encoder's folder."""
        setfit = require_module("setfit", "setfit", "setfit", "setfit")
        if pairs is not None:
            raise ConfigError("--method setfit does not take text pairs.")
        import datasets

        model = setfit.SetFitModel.from_pretrained(runner.path)
        # Truncated like every other method of the comparison (the sentence-transformers
        # default, 256 tokens, makes long texts such as news many times slower)
        model.model_body.max_seq_length = runner.model.collator.max_length
        train = datasets.Dataset.from_dict({"text": list(texts), "label": list(labels)})
        # The SetFit paper's setting: 20 pair iterations per example, one epoch. (setfit 1.x
        # otherwise oversamples every pair: 9,000+ steps for 77 x 5 examples on a CPU.) Its
        # checkpoints and logs would go to ./checkpoints and ./runs: a temporary folder.
        with tempfile.TemporaryDirectory(prefix="fewshot-nlp-setfit-") as scratch:
            args = setfit.TrainingArguments(
                output_dir=scratch,
                logging_dir=scratch,
                save_strategy="no",
                report_to="none",
                batch_size=16,
                num_epochs=1,
                num_iterations=20,
                seed=0,
                show_progress_bar=False,
            )
            setfit.Trainer(model=model, args=args, train_dataset=train).train()
        return model

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        model = self.fit(runner, task.support_texts, task.support_labels, task.support_pairs)
        return np.asarray(model.predict(list(task.query_texts), as_numpy=True))


@register_method
class LabelCosine:
    """The 0-shot baseline: it reads no support examples, only the label names."""

    name, adaptation, zero_shot = "label-cosine", False, True

    def predict(self, runner: Runner, task: Task) -> np.ndarray:
        if not task.label_names:
            raise ConfigError("label-cosine needs the label names of the episode.")
        model = runner.model
        names = [label_name_text(n) for n in task.label_names]
        query = F.normalize(model.features(task.query_texts, task.query_pairs, "mean"), dim=-1)
        name_feats = F.normalize(model.features(names, None, "mean"), dim=-1)
        return (query @ name_feats.T).argmax(-1).numpy()


def finetune(runner: Runner, support, labels, n_way):
    """Standard fine-tuning on copies of the weights (the loaded model stays untouched)."""
    from transformers.optimization import get_linear_schedule_with_warmup

    cfg = runner.finetune_config
    maml, module = runner.model.maml, runner.model.model
    labels = labels.to(runner.model.device)
    params = {
        n: p.detach().clone().requires_grad_()
        for n, p in module.named_parameters()
        if p.is_floating_point() and n not in maml.head_params
    }
    hidden = maml.features({}, {k: v[:1] for k, v in support.items()}).shape[-1]
    generator = torch.Generator().manual_seed(cfg.seed)
    std = getattr(getattr(module, "config", None), "initializer_range", 0.02)
    weight = (torch.randn(n_way, hidden, generator=generator) * std).requires_grad_()
    bias = torch.zeros(n_way, requires_grad=True)
    decay = [p for n, p in params.items() if p.dim() > 1] + [weight]
    no_decay = [p for n, p in params.items() if p.dim() <= 1] + [bias]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.learning_rate,
    )
    total = labels.shape[0]
    steps = cfg.epochs * math.ceil(total / cfg.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    module.train()
    try:
        for _ in range(cfg.epochs):
            order = torch.randperm(total, generator=generator)
            for i in range(0, total, cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                batch = {k: v[idx] for k, v in support.items()}
                logits = F.linear(maml.features(params, batch), weight, bias)
                loss = F.cross_entropy(logits, labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
    finally:
        module.eval()
    return {n: p.detach() for n, p in params.items()}, (weight.detach(), bias.detach())


METHODS = tuple(METHOD_REGISTRY)
DEFAULT_METHODS = ("maml", "maml-base", "logreg", "prototype", "finetune")
