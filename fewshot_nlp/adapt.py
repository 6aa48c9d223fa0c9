"""A meta-trained model + a few labelled examples of new classes -> a standard classifier."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace

import torch

from .data.collate import EpisodeCollator
from .data.sources import TaskSource, warn_unnamed_labels
from .errors import DataError
from .meta.config import MAMLConfig, plain_checkpoint_config
from .meta.maml import HEAD_BIAS, HEAD_WEIGHT, MAML
from .meta.saving import load_inner_lrs, load_meta_model
from .modeling.head import set_head

DEFAULT_SUPPORT_BATCH = 64


def as_task_source(
    train_data, *, text_column="text", label_column="label", text_pair_column=None
) -> TaskSource:
    """Whatever the user has (Dataset, (text, label) pairs, file paths) as a TaskSource."""
    if isinstance(train_data, TaskSource):
        return train_data
    import datasets

    if isinstance(train_data, (datasets.Dataset, datasets.DatasetDict)):
        return TaskSource.from_dataset(
            train_data,
            name="train_data",
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
        )
    if isinstance(train_data, (str, os.PathLike)) or (
        isinstance(train_data, Sequence)
        and train_data
        and isinstance(train_data[0], (str, os.PathLike))
    ):
        return TaskSource.from_files(
            train_data,
            name="train_data",
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
        )
    pairs = list(train_data)
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise DataError(
            "train_data must be a Dataset, file path(s), or a list of (text, label) pairs."
        )
    warn_unnamed_labels([label for _, label in pairs], "train_data")
    return TaskSource(
        name="train_data", texts=[t for t, _ in pairs], labels=[str(y) for _, y in pairs]
    )


def adapt(
    model,
    train_data,
    *,
    tokenizer=None,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    steps: int | None = None,
    learning_rate: float | None = None,
    max_length: int | None = None,
    support_batch_size: int | None = None,
    merge_lora: bool = True,
    head_init: str | None = None,
    step_candidates: list[int] | None = None,
    label_names: str | None = None,
):
    """Adapt to ``train_data``'s classes; returns a ``PreTrainedModel`` with their names.

    ``model`` is a meta-trained folder (its recorded adaptation is replayed) or any
    sequence-classification checkpoint (adapted with default settings and a warning).
    ``head_init`` and ``step_candidates`` override the recorded head and the inner steps'
    cross-validation (``[0, 1, 3]``: pick by k-fold on the support set; ``steps`` fixes them);
    ``label_names`` ('auto', 'always', 'never') whether the label names join the support.
    """
    # The data is checked before anything is loaded: a bad file fails in a second.
    source = as_task_source(
        train_data,
        text_column=text_column,
        label_column=label_column,
        text_pair_column=text_pair_column,
    ).without_blank_texts()
    if len(source.label_index) < 2:
        raise DataError(
            f"train_data has {len(source.label_index)} class ({source.label_names}): a classifier "
            "needs at least 2 labels with examples."
        )
    info: dict = {}
    config: MAMLConfig | None = None
    if isinstance(model, (str, os.PathLike)):
        model, loaded_tokenizer, config, info = load_meta_model(model)
        tokenizer = tokenizer or loaded_tokenizer
        if config is None:
            warnings.warn(
                f"{info.get('path', 'The model')} is not a meta-trained fewshot-nlp run (no "
                "fewshot_nlp.json): adapting it as a plain checkpoint with default settings.",
                stacklevel=2,
            )
    if tokenizer is None:
        raise DataError("adapt() needs a tokenizer when given a model object: pass tokenizer=...")
    config = config or plain_checkpoint_config(model)
    overrides = {
        "support_batch_size": support_batch_size
        or config.support_batch_size
        or DEFAULT_SUPPORT_BATCH
    }
    if steps is not None:
        overrides["inner_steps"] = steps
        overrides["adapt_step_candidates"] = None
    if step_candidates is not None:
        overrides["adapt_step_candidates"] = list(step_candidates)
    if head_init is not None:
        overrides["adapt_head_init"] = head_init
    if label_names is not None:
        overrides["label_names"] = label_names
    if learning_rate is not None:
        overrides["inner_learning_rate"] = learning_rate
        overrides["learn_inner_lr"] = "none"
    config = replace(config, **overrides)
    max_length = max_length or info.get("max_length") or 128
    label_names = source.label_names
    label_ids = {name: i for i, name in enumerate(label_names)}
    collator = EpisodeCollator(tokenizer, max_length=max_length)
    _warn_truncation(tokenizer, source.texts, source.text_pairs, max_length)
    support = collator.encode(source.texts, source.text_pairs)
    labels = torch.tensor([label_ids[y] for y in source.labels])

    model.eval()
    maml = MAML(model, config)
    if isinstance(info.get("path"), str):
        load_inner_lrs(maml, info["path"])
    device = next(model.parameters()).device
    support = {k: v.to(device) for k, v in support.items()}
    names = None
    if not source.text_pairs:
        names = {k: v.to(device) for k, v in collator.encode_label_names(label_names).items()}
    fast, metrics = maml.adapt_fast_weights(
        support,
        labels.to(device),
        len(label_names),
        names=names,
        source="train_data",
        meta_grad=False,
    )
    if metrics.get("cv_fallback"):
        warnings.warn(f"adapt: {metrics['cv_fallback']}.", stacklevel=2)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in maml.fast_names:
            params[name].copy_(fast[name])
    if hasattr(model, "peft_config") and merge_lora:
        model = model.merge_and_unload()
    set_head(model, maml.head_name, fast[HEAD_WEIGHT], fast[HEAD_BIAS], label_names)
    model.fewshot_nlp_adaptation = {
        "classes": len(label_names),
        "examples": len(source),
        "inner_steps": metrics["inner_steps"],
        "inner_learning_rate": config.inner_learning_rate,
        "adapt_scope": config.adapt_scope,
        "head_init": config.adaptation_head_init,
        "step_candidates": config.adapt_step_candidates,
        "cv_accuracy": metrics.get("cv_accuracy"),
        "cv_fallback": metrics.get("cv_fallback"),
        "label_names_used": bool(metrics.get("label_names_used")),
        "label_name_accuracy": metrics.get("label_name_accuracy"),
        "support_loss_before": metrics.get("support_loss_before"),
        "meta_trained": bool(info.get("maml")),
        "meta_training": info.get("meta_training"),
        "base_model": info.get("base_model"),
        "base_encoder": info.get("base_encoder") or info.get("base_model") or info.get("path"),
    }
    return model


def _warn_truncation(tokenizer, texts, pairs, max_length: int) -> None:
    lengths = tokenizer(texts, pairs, truncation=False)["input_ids"]
    over = sum(len(ids) > max_length for ids in lengths)
    if over:
        warnings.warn(
            f"{over} of {len(texts)} texts are longer than max_length={max_length} "
            "tokens and were truncated.",
            stacklevel=3,
        )
