"""Episodic and fixed-shot evaluation of few-shot methods, paired on the same episodes.

Methods: ``maml`` (the model's own meta-learned adaptation), ``finetune`` (standard
fine-tuning with a new head, AdamW), ``prototype`` (nearest class mean of the frozen
encoder's features). Each returns query predictions for a support set.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data.collate import EpisodeCollator
from .data.episodes import Episode, EpisodeSampler
from .data.sources import TaskSource
from .errors import ConfigError
from .meta.config import MAMLConfig
from .meta.maml import MAML
from .meta.saving import load_inner_lrs, load_meta_model
from .metrics import classification_metric
from .modeling.head import class_prototypes

METHODS = ("maml", "finetune", "prototype")


@dataclass
class FinetuneConfig:
    """The fine-tuning baseline: AdamW on all weights and a new randomly initialised head."""

    steps: int = field(default=10, metadata={"help": "Full-batch AdamW steps on the support set."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Encoder learning rate."})
    head_learning_rate: float = field(default=1e-2, metadata={"help": "New head's learning rate."})


class FewShotModel:
    """One loaded checkpoint, able to run every method on a support/query split."""

    def __init__(
        self,
        path: str,
        *,
        max_length: int | None = None,
        prototype_pooling: str = "mean",
        finetune: FinetuneConfig | None = None,
        support_batch_size: int = 64,
    ) -> None:
        if prototype_pooling not in ("mean", "head"):
            raise ConfigError(
                f"prototype_pooling must be 'mean' or 'head', got {prototype_pooling!r}."
            )
        self.path = str(path)
        model, self.tokenizer, config, info = load_meta_model(path)
        if config is None:
            config = MAMLConfig(adapt_scope="lora" if hasattr(model, "peft_config") else "head")
        self.meta_trained = "maml" in info
        self.config = replace(config, support_batch_size=support_batch_size)
        self.model = model.eval()
        self.maml = MAML(self.model, self.config)
        load_inner_lrs(self.maml, path)
        self.collator = EpisodeCollator(self.tokenizer, max_length or info.get("max_length") or 128)
        self.prototype_pooling = prototype_pooling
        self.finetune_config = finetune or FinetuneConfig()

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
    ) -> np.ndarray:
        support = self.collator.encode(list(support_texts), support_pairs)
        labels = torch.as_tensor(support_labels)
        if method == "maml":
            fast, _ = self.maml.adapt_fast_weights(support, labels, n_way, meta_grad=False)
            return self._predict_batches(
                query_texts,
                query_pairs,
                lambda q: self.maml.logits(self.maml.features(fast, q), fast),
            )
        if method == "prototype":
            with torch.no_grad():
                protos = class_prototypes(self._frozen_features(support), labels, n_way)
            return self._predict_batches(
                query_texts, query_pairs, lambda q: -torch.cdist(self._frozen_features(q), protos)
            )
        if method == "finetune":
            params, head = self._finetune(support, labels, n_way)
            return self._predict_batches(
                query_texts,
                query_pairs,
                lambda q: F.linear(self.maml.features(params, q), head[0], head[1]),
            )
        raise ConfigError(f"Unknown method {method!r}; choose from {METHODS}.")

    @torch.no_grad()
    def _predict_batches(self, texts, pairs, logits_fn, batch_size: int = 128) -> np.ndarray:
        preds = []
        for i in range(0, len(texts), batch_size):
            batch = self.collator.encode(
                list(texts[i : i + batch_size]),
                None if pairs is None else list(pairs[i : i + batch_size]),
            )
            preds.append(logits_fn(batch).argmax(-1))
        return torch.cat(preds).numpy()

    def _frozen_features(self, inputs) -> torch.Tensor:
        if self.prototype_pooling == "head":
            return self.maml.features({}, inputs)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = base.base_model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def _finetune(self, support, labels, n_way):
        """Standard fine-tuning on copies of the weights (the loaded model stays untouched)."""
        cfg = self.finetune_config
        params = {
            n: p.detach().clone().requires_grad_()
            for n, p in self.model.named_parameters()
            if p.is_floating_point() and n not in self.maml._head_params
        }
        hidden = self.maml.features({}, {k: v[:1] for k, v in support.items()}).shape[-1]
        generator = torch.Generator().manual_seed(0)
        weight = (torch.randn(n_way, hidden, generator=generator) * 0.02).requires_grad_()
        bias = torch.zeros(n_way, requires_grad=True)
        optimizer = torch.optim.AdamW(
            [
                {"params": list(params.values()), "lr": cfg.learning_rate},
                {"params": [weight, bias], "lr": cfg.head_learning_rate},
            ]
        )
        self.model.train()
        for _ in range(cfg.steps):
            loss = F.cross_entropy(
                F.linear(self.maml.features(params, support), weight, bias), labels
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.model.eval()
        return {n: p.detach() for n, p in params.items()}, (weight.detach(), bias.detach())


def _runners(model, baseline_model, methods) -> dict[str, FewShotModel]:
    """Which loaded model runs each method: ``maml`` the main one, baselines the baseline."""

    def load(m):
        return m if isinstance(m, FewShotModel) else FewShotModel(m)

    main = load(model)
    base = main if baseline_model is None else load(baseline_model)
    return {m: (main if m == "maml" else base) for m in methods}


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95% confidence half-width (1.96 * std / sqrt(n))."""
    array = np.asarray(values, dtype=np.float64)
    ci = 1.96 * array.std(ddof=1) / math.sqrt(len(array)) if len(array) > 1 else float("nan")
    return {"mean": float(array.mean()), "ci95": float(ci)}


def _score(predictions, references) -> dict[str, float]:
    return classification_metric().compute(predictions=predictions, references=references)


def evaluate_episodes(
    model: str | FewShotModel,
    sources: Sequence[TaskSource],
    *,
    n_way=5,
    k_shots: Sequence[int] = (1, 5),
    q_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    baseline_model: str | FewShotModel | None = None,
    progress: bool = True,
) -> list[dict]:
    """Episodic protocol: every method sees the same episodes (a paired comparison)."""
    from tqdm.auto import tqdm

    models = _runners(model, baseline_model, methods)
    raw = {m: {} for m in methods}
    for k in k_shots:
        sampler = EpisodeSampler(sources, n_way, k, q_query, seed=seed)
        scores = {m: {"accuracy": [], "f1_macro": [], "seconds": []} for m in methods}
        for _ in tqdm(range(episodes), desc=f"{k}-shot", disable=not progress):
            episode = sampler.sample()
            for method in methods:
                start = time.perf_counter()
                pred = _predict_episode(models[method], method, episode)
                scores[method]["seconds"].append(time.perf_counter() - start)
                for key, value in _score(pred, episode.query_labels).items():
                    scores[method][key].append(value)
        for method in methods:
            s = scores[method]
            raw[method][str(k)] = {
                "accuracy": summarize(s["accuracy"]),
                "f1_macro": summarize(s["f1_macro"]),
                "episodes": episodes,
                "adapt_seconds": float(np.mean(s["seconds"])),
            }
    dataset = "+".join(sorted({s.name for s in sources}))
    return [
        {
            "protocol": "episodic",
            "model": models[m].path,
            "dataset": dataset,
            "method": m,
            "n_way": n_way,
            "q_query": q_query,
            "seed": seed,
            "results": raw[m],
        }
        for m in methods
    ]


def _predict_episode(model: FewShotModel, method: str, episode: Episode) -> np.ndarray:
    return model.predict(
        method,
        episode.support_texts,
        episode.support_labels,
        episode.n_way,
        episode.query_texts,
        episode.support_text_pairs,
        episode.query_text_pairs,
    )


def evaluate_fixed(
    model: str | FewShotModel,
    train: TaskSource,
    test: TaskSource,
    *,
    methods: Sequence[str] = METHODS,
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
    figure.savefig(path, format="png")
    plt.close(figure)
    return path


def write_results(evaluations: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(evaluations, indent=2) + "\n", encoding="utf-8")
    return path
