"""``MethodRunner``: one loaded model and the baselines' settings; which model runs each
method of a comparison."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..meta.model import FewShotModel
from .methods import FinetuneConfig, Task, get_method


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
        """Query predictions of ``method`` (a name in ``METHOD_REGISTRY``) for one task."""
        runs = get_method(method)
        task = Task(
            support_texts,
            support_labels,
            n_way,
            query_texts,
            support_pairs,
            query_pairs,
            label_names,
        )
        return runs.predict(self, task)


def method_runners(model, baseline_model, methods) -> dict[str, MethodRunner]:
    """Which loaded model runs each method: ``maml`` the main one, ``maml-base`` the same
    adaptation on the encoder before meta-training, the baselines the base encoder the
    meta-model came from (or ``baseline_model``), so that they never gain or lose from our
    meta-training silently."""

    kinds = {m: get_method(m) for m in methods}  # unknown names fail before any loading

    def load(m):
        return m if isinstance(m, MethodRunner) else MethodRunner(m)

    main = load(model)
    runs_on = {m: getattr(kind, "runs_on", "model") for m, kind in kinds.items()}
    start = None
    if "start" in runs_on.values():
        start = main.with_model(main.model.without_meta_training())
    if baseline_model is None and any(not kind.adaptation for kind in kinds.values()):
        origin = main.model.base_encoder if main.model.meta_trained else None
        baseline_model = origin if origin and Path(origin).is_dir() else None
        if origin and baseline_model is None:
            warnings.warn(
                f"The base encoder {origin} of {main.path} is not a local folder: the baselines "
                "run on the meta-trained model itself. Pass baseline_model=... to choose.",
                stacklevel=3,
            )
    base = main
    if isinstance(baseline_model, MethodRunner):
        base = baseline_model
    elif baseline_model is not None:  # the main runner's settings (logreg_c, pools, ...)
        if not isinstance(baseline_model, FewShotModel):
            baseline_model = FewShotModel.from_pretrained(baseline_model)
        base = main.with_model(baseline_model)
    chosen = {}
    for m, kind in kinds.items():
        if runs_on[m] == "start":
            chosen[m] = start
        else:
            chosen[m] = main if kind.adaptation else base
    return chosen
