"""The two protocols, paired: every method sees the same episodes (episodic), or adapts
once on a whole training file and is scored on a whole test file (fixed)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import numpy as np

from ..data.episodes import Episode, EpisodeSampler, check_counts
from ..data.sources import TaskSource
from ..errors import ConfigError
from ..meta.model import FewShotModel
from ..metrics import classification_metric
from .methods import DEFAULT_METHODS, get_method
from .report import n_way_text
from .runner import MethodRunner, method_runners


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
    models = method_runners(model, baseline_model, methods)
    raw = {m: {} for m in methods}
    for k, sampler in samplers.items():
        caps = {m: min(episodes, (method_episodes or {}).get(m, episodes)) for m in methods}
        if k == 0:  # methods that need examples have no 0-shot row
            caps = {m: (n if get_method(m).zero_shot else 0) for m, n in caps.items()}
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
            "n_way": n_way_text(n_way),
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
    train: TaskSource | None,
    test: TaskSource,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    baseline_model=None,
    shots: str = "",
) -> list[dict]:
    """Fixed-shot protocol: adapt once on all classes of ``train``, score all of ``test``.

    ``train=None`` is the 0-shot row: the classes are the test's label names, no examples,
    so only the methods that classify from names alone can run."""
    if train is None:
        needing = [m for m in methods if not get_method(m).zero_shot]
        if needing:
            raise ConfigError(
                f"Methods {needing} need examples; a 0-shot fixed evaluation (no training "
                "file) can only run the methods that use label names alone, such as "
                "maml and label-cosine."
            )
    models = method_runners(model, baseline_model, methods)
    names = (train or test).label_names
    ids = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(test.label_names) - set(ids))
    if unknown:
        warnings.warn(
            f"{len(unknown)} test labels have no training examples and count as errors: "
            f"{unknown[:5]}",
            stacklevel=2,
        )
    references = [ids.get(y, -1) for y in test.labels]
    support, support_ids, support_pairs = (
        (train.texts, [ids[y] for y in train.labels], train.text_pairs) if train else ([], [], None)
    )
    key = shots or (str(min(len(v) for v in train.label_index.values())) if train else "0")
    out = []
    for method in methods:
        runner = models[method]
        start = time.perf_counter()
        pred = runner.predict(
            method,
            support,
            support_ids,
            len(names),
            test.texts,
            support_pairs,
            test.text_pairs,
            names,
        )
        seconds = time.perf_counter() - start
        scores = _score(pred, references)
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
