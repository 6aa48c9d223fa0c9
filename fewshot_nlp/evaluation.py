"""Episodic and fixed-shot evaluation of few-shot methods, paired on the same episodes.

Methods: ``maml`` (the model's own meta-learned adaptation), ``maml-base`` (that same
adaptation on the encoder before meta-training: ``maml`` minus it is what meta-training
added, the meta-value), and the baselines a user
would try on the base encoder: ``logreg`` (logistic regression on frozen, mean-pooled,
L2-normalised embeddings), ``prototype`` (nearest class mean, cosine by default),
``finetune`` (a standard fine-tuning recipe with a new head) and ``setfit`` (when the
``setfit`` package is installed). Each returns query predictions for a support set.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data.collate import label_name_text
from .data.episodes import Episode, EpisodeSampler, check_counts
from .data.sources import TaskSource
from .errors import ConfigError
from .meta.maml import HEAD_BIAS, HEAD_WEIGHT
from .meta.model import FewShotModel
from .metrics import classification_metric
from .modeling.head import class_prototypes
from .paths import atomic_file

# maml-base: the run's own adaptation on the encoder before meta-training (the meta-value row)
# label-cosine: nearest label name by cosine of the base encoder's embeddings (the 0-shot
# baseline; it reads no support examples)
METHODS = ("maml", "maml-base", "logreg", "prototype", "finetune", "setfit", "label-cosine")
DEFAULT_METHODS = ("maml", "maml-base", "logreg", "prototype", "finetune")
ADAPTATION_METHODS = ("maml", "maml-base")
ZERO_SHOT_METHODS = (*ADAPTATION_METHODS, "label-cosine")  # those that run at k_shot 0


@dataclass
class FinetuneConfig:
    """The fine-tuning baseline as ``transformers.Trainer`` runs it for a new head: AdamW on
    every weight, mini-batches, epochs, linear warm-up then decay, weight decay."""

    epochs: int = field(default=10, metadata={"help": "Passes over the support set."})
    batch_size: int = field(default=16, metadata={"help": "Support examples per step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps warming up."})
    seed: int = field(default=0, metadata={"help": "Seed of the head init and batch order."})


def _require(module: str, method: str, extra: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"Method {method!r} needs the `{package}` package, which is not installed: "
            f"pip install 'fewshot-nlp[{extra}]' (or pip install {package})."
        ) from error


class MethodRunner:
    """Runs every method of the comparison on one loaded model (a ``FewShotModel``)."""

    def __init__(
        self,
        model: str | FewShotModel | MethodRunner,
        *,
        prototype_pooling: str = "mean",
        prototype_distance: str = "cosine",
        finetune: FinetuneConfig | None = None,
        logreg_c: float = 10.0,
        **load_options,
    ) -> None:
        if prototype_pooling not in ("mean", "head"):
            raise ConfigError(
                f"prototype_pooling must be 'mean' or 'head', got {prototype_pooling!r}."
            )
        if prototype_distance not in ("cosine", "euclidean"):
            raise ConfigError(
                f"prototype_distance must be 'cosine' or 'euclidean', got {prototype_distance!r}."
            )
        if logreg_c <= 0:
            raise ConfigError(f"logreg_c must be > 0, got {logreg_c}.")
        if not isinstance(model, FewShotModel):
            model = FewShotModel.from_pretrained(model, **load_options)
        self.model = model
        self.prototype_pooling = prototype_pooling
        self.prototype_distance = prototype_distance
        self.logreg_c = logreg_c
        self.finetune_config = finetune or FinetuneConfig()

    @property
    def path(self) -> str | None:
        return self.model.path

    def with_model(self, model: FewShotModel) -> MethodRunner:
        """The same baseline settings on another loaded model."""
        other = copy.copy(self)
        other.model = model
        return other

    # ---------------------------------------------------------------- methods
    def predict(
        self,
        method: str,
        support_texts,
        support_labels,
        n_way: int,
        query_texts,
        support_pairs=None,
        query_pairs=None,
        label_names: Sequence[str] | None = None,
    ) -> np.ndarray:
        model = self.model
        labels = torch.as_tensor(support_labels)
        if method in ADAPTATION_METHODS:  # each on its own runner (see _runners)
            return model.predict(
                support_texts,
                support_labels,
                n_way,
                query_texts,
                support_pairs=support_pairs,
                query_pairs=query_pairs,
                label_names=label_names,
            )
        if method == "label-cosine":
            if not label_names:
                raise ConfigError("label-cosine needs the label names of the episode.")
            names = [label_name_text(n) for n in label_names]
            query_feats = F.normalize(model.features(query_texts, query_pairs, "mean"), dim=-1)
            name_feats = F.normalize(model.features(names, None, "mean"), dim=-1)
            return (query_feats @ name_feats.T).argmax(-1).numpy()
        if method in ("prototype", "logreg"):
            cosine = method == "logreg" or self.prototype_distance == "cosine"
            pooling = self.prototype_pooling if method == "prototype" else "mean"
            support_feats = model.features(support_texts, support_pairs, pooling)
            query_feats = model.features(query_texts, query_pairs, pooling)
            if cosine:
                support_feats = F.normalize(support_feats, dim=-1)
                query_feats = F.normalize(query_feats, dim=-1)
            if method == "logreg":
                classifier = self._fit_logreg(support_feats, labels)
                return classifier.predict(query_feats.numpy())
            protos = class_prototypes(support_feats, labels, n_way)
            if cosine:
                return (query_feats @ F.normalize(protos, dim=-1).T).argmax(-1).numpy()
            return (-torch.cdist(query_feats, protos)).argmax(-1).numpy()
        if method == "finetune":
            params, head = self._finetune(model.encode(support_texts, support_pairs), labels, n_way)
            fast = {**params, HEAD_WEIGHT: head[0], HEAD_BIAS: head[1]}
            return model.logits(fast, list(query_texts), query_pairs).argmax(-1).cpu().numpy()
        if method == "setfit":
            fitted = self._fit_setfit(support_texts, support_labels, support_pairs)
            return np.asarray(fitted.predict(list(query_texts), as_numpy=True))
        raise ConfigError(f"Unknown method {method!r}; choose from {METHODS}.")

    def _fit_logreg(self, feats: torch.Tensor, labels: torch.Tensor):
        """What a user writes in ten lines: scikit-learn on the frozen sentence embeddings."""
        linear_model = _require("sklearn.linear_model", "logreg", "baselines", "scikit-learn")
        classifier = linear_model.LogisticRegression(C=self.logreg_c, max_iter=1000)
        return classifier.fit(feats.numpy(), labels.numpy())

    def _fit_setfit(self, texts, labels, pairs):
        setfit = _require("setfit", "setfit", "setfit", "setfit")
        if pairs is not None:
            raise ConfigError("--method setfit does not take text pairs.")
        import datasets

        model = setfit.SetFitModel.from_pretrained(self.path)
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

    def _finetune(self, support, labels, n_way):
        """Standard fine-tuning on copies of the weights (the loaded model stays untouched)."""
        from transformers.optimization import get_linear_schedule_with_warmup

        cfg = self.finetune_config
        maml, module = self.model.maml, self.model.model
        labels = labels.to(self.model.device)
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


def _runners(model, baseline_model, methods) -> dict[str, MethodRunner]:
    """Which loaded model runs each method: ``maml`` the main one, ``maml-base`` the same
    adaptation on the encoder before meta-training, the baselines the base encoder the
    meta-model came from (or ``baseline_model``), so that they never gain or lose from our
    meta-training silently."""

    def load(m):
        return m if isinstance(m, MethodRunner) else MethodRunner(m)

    main = load(model)
    runners = {}
    if "maml-base" in methods:
        runners["maml-base"] = main.with_model(main.model.without_meta_training())
    if baseline_model is None and any(m not in ADAPTATION_METHODS for m in methods):
        origin = main.model.base_encoder if main.model.meta_trained else None
        baseline_model = origin if origin and Path(origin).is_dir() else None
        if origin and baseline_model is None:
            warnings.warn(
                f"The base encoder {origin} of {main.path} is not a local folder: the baselines "
                "run on the meta-trained model itself. Pass baseline_model=... to choose.",
                stacklevel=3,
            )
    base = main if baseline_model is None else load(baseline_model)
    return {m: runners.get(m, main if m == "maml" else base) for m in methods}


def summarize(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and 95% confidence half-width (1.96 * std / sqrt(n); None for one value)."""
    array = np.asarray(values, dtype=np.float64)
    ci = 1.96 * array.std(ddof=1) / math.sqrt(len(array)) if len(array) > 1 else None
    return {"mean": float(array.mean()), "ci95": None if ci is None else float(ci)}


def _score(predictions, references) -> dict[str, float]:
    return classification_metric().compute(predictions=predictions, references=references)


def evaluate_episodes(
    model: str | FewShotModel | MethodRunner,
    sources: Sequence[TaskSource],
    *,
    n_way=5,
    k_shots: Sequence[int] = (1, 5),
    q_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
    methods: Sequence[str] = DEFAULT_METHODS,
    baseline_model: str | FewShotModel | MethodRunner | None = None,
    progress: bool = True,
    method_episodes: dict[str, int] | None = None,
) -> list[dict]:
    """Episodic protocol: every method sees the same episodes (a paired comparison).

    ``method_episodes`` caps slow methods (e.g. ``{"finetune": 100}``): they run on the first
    that many of the same episodes, and their rows say how many.
    """
    if not k_shots:
        raise ConfigError("k_shots is empty: give at least one shot count, e.g. 1,5.")
    caps = [(f"max_episodes {m}", n) for m, n in (method_episodes or {}).items()]
    check_counts([("episodes", episodes), ("q_query", q_query), *caps])
    check_counts((("k_shot", k) for k in k_shots), minimum=0)
    # Every shot count is checked against the data before the first episode runs.
    samplers = {k: EpisodeSampler(sources, n_way, k, q_query, seed=seed) for k in k_shots}
    models = _runners(model, baseline_model, methods)
    raw = {m: {} for m in methods}
    for k, sampler in samplers.items():
        caps = {m: min(episodes, (method_episodes or {}).get(m, episodes)) for m in methods}
        if k == 0:  # methods that need examples have no 0-shot row
            caps = {m: (n if m in ZERO_SHOT_METHODS else 0) for m, n in caps.items()}
        rows = _run_episodes(sampler, models, caps, episodes, f"{k}-shot", progress)
        for method, row in rows.items():
            raw[method][str(k)] = row
    dataset = "+".join(sorted({s.name for s in sources}))
    return [
        {
            "protocol": "episodic",
            "model": models[m].path,
            "dataset": dataset,
            "method": m,
            "n_way": _n_way_text(n_way),
            "k_shots": list(k_shots),
            "q_query": q_query,
            "episodes": episodes,
            "seed": seed,
            "results": raw[m],
        }
        for m in methods
    ]


def _run_episodes(sampler, models: dict, caps: dict, episodes: int, desc: str, progress):
    """One shot count: every method on the same episodes (each up to its cap); a summary
    row per method that ran."""
    from tqdm.auto import tqdm

    scores = {m: {"accuracy": [], "f1_macro": [], "seconds": []} for m in models}
    for index in tqdm(range(episodes), desc=desc, disable=not progress):
        episode = sampler.sample()
        for method, runner in models.items():
            if index >= caps[method]:
                continue
            start = time.perf_counter()
            pred = _predict_episode(runner, method, episode)
            scores[method]["seconds"].append(time.perf_counter() - start)
            for key, value in _score(pred, episode.query_labels).items():
                scores[method][key].append(value)
    return {
        method: {
            "accuracy": summarize(s["accuracy"]),
            "f1_macro": summarize(s["f1_macro"]),
            "episodes": caps[method],
            "adapt_seconds": float(np.mean(s["seconds"])),
        }
        for method, s in scores.items()
        if caps[method]
    }


def _predict_episode(model: MethodRunner, method: str, episode: Episode) -> np.ndarray:
    return model.predict(
        method,
        episode.support_texts,
        episode.support_labels,
        episode.n_way,
        episode.query_texts,
        episode.support_text_pairs,
        episode.query_text_pairs,
        episode.label_names,
    )


def evaluate_fixed(
    model: str | FewShotModel | MethodRunner,
    train: TaskSource,
    test: TaskSource,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    baseline_model=None,
    shots: str = "",
) -> list[dict]:
    """Fixed-shot protocol: adapt once on all classes of ``train``, score all of ``test``."""
    models = _runners(model, baseline_model, methods)
    names = train.label_names
    ids = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(test.label_names) - set(ids))
    if unknown:
        warnings.warn(
            f"{len(unknown)} test labels have no training examples and count as errors: "
            f"{unknown[:5]}",
            stacklevel=2,
        )
    references = [ids.get(y, -1) for y in test.labels]
    out = []
    for method in methods:
        runner = models[method]
        start = time.perf_counter()
        pred = runner.predict(
            method,
            train.texts,
            [ids[y] for y in train.labels],
            len(names),
            test.texts,
            train.text_pairs,
            test.text_pairs,
            names,
        )
        seconds = time.perf_counter() - start
        scores = _score(pred, references)
        key = shots or str(min(len(v) for v in train.label_index.values()))
        out.append(
            {
                "protocol": "fixed",
                "model": runner.path,
                "dataset": test.name,
                "method": method,
                "results": {
                    key: {
                        "accuracy": {"mean": scores["accuracy"], "ci95": None},
                        "f1_macro": {"mean": scores["f1_macro"], "ci95": None},
                        "episodes": 1,
                        "test_examples": len(test),
                        "adapt_seconds": seconds,
                    }
                },
            }
        )
    return out


def format_table(evaluations: list[dict]) -> str:
    """A one-screen table: method x shots, accuracy and macro-F1 with CI."""
    lines = [
        f"{'method':<11}{'shots':>6}{'accuracy':>18}{'macro-F1':>18}{'episodes':>10}{'s/adapt':>9}"
    ]
    for entry in evaluations:
        for k, r in entry["results"].items():

            def cell(m):
                ci = m["ci95"]
                return f"{100 * m['mean']:.2f}" + (f" ± {100 * ci:.2f}" if ci is not None else "")

            lines.append(
                f"{entry['method']:<11}{k:>6}{cell(r['accuracy']):>18}"
                f"{cell(r['f1_macro']):>18}{r['episodes']:>10}{r['adapt_seconds']:>9.2f}"
            )
    return "\n".join(lines)


def plot_accuracy(evaluations: list[dict], path: str | Path) -> Path:
    """Accuracy against shots per method, with 95% CI bars, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    for entry in evaluations:
        ks = sorted(entry["results"], key=int)
        means = [100 * entry["results"][k]["accuracy"]["mean"] for k in ks]
        cis = [100 * (entry["results"][k]["accuracy"]["ci95"] or 0) for k in ks]
        axis.errorbar(
            [int(k) for k in ks], means, yerr=cis, marker="o", capsize=3, label=entry["method"]
        )
    axis.set_xlabel("shots per class")
    axis.set_ylabel("query accuracy (%)")
    axis.set_title(evaluations[0]["dataset"] if evaluations else "")
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)
    return path


def write_results(evaluations: list[dict], path: str | Path) -> Path:
    """Strict JSON: what is undefined (a NaN, a CI of one episode) is written as null."""
    path = Path(path)
    text = json.dumps(_json_safe(evaluations), indent=2, allow_nan=False)
    with atomic_file(path) as handle:
        handle.write(text + "\n")
    return path


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _n_way_text(n_way) -> str | int:
    """n_way as the CLI writes it: 5, '2-10' or 'all'."""
    return f"{n_way[0]}-{n_way[1]}" if isinstance(n_way, (tuple, list)) else n_way
