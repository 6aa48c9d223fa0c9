"""A meta-trained model + a few labelled examples of new classes -> a standard classifier."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

from .data.sources import as_task_source, training_source
from .errors import ConfigError, DataError
from .meta.class_memory import is_exported_classifier
from .meta.config import plain_checkpoint_config
from .meta.grow import grow
from .meta.maml import MAML
from .meta.model import DEFAULT_SUPPORT_BATCH, FewShotModel, check_adapt_options

__all__ = ["adapt", "as_task_source"]


def adapt(
    model,
    train_data=None,
    *,
    labels=None,
    tokenizer=None,
    trust_remote_code: bool = False,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    **options,
):
    """Adapt to ``train_data``'s classes (or ``labels``: the class names, some or all without
    examples, for 0-shot); returns a ``PreTrainedModel`` with their names.

    ``model``: a ``FewShotModel``, a meta-trained folder (its recorded adaptation is
    replayed), or any sequence-classification checkpoint or model object (head-only logistic
    regression, with a warning). ``options`` are those of ``FewShotModel.adapt``
    (inner_steps, inner_learning_rate, max_length, support_batch_size, merge_lora,
    adapt_head_init, adapt_step_candidates, label_names, unknown_label, unknown_data,
    max_in_scope_loss), spelled as in ``MAMLConfig``.

    An exported classifier folder (one with a class memory) grows instead: ``train_data``'s
    new labels are added, examples of its labels add to them, ``remove_labels`` are dropped,
    all without the old training texts (``meta.grow``).
    """
    remove_labels = options.pop("remove_labels", None)
    if isinstance(model, (str, os.PathLike)) and is_exported_classifier(model):
        _refuse_settings_for_growth(model, labels, options)
        return grow(
            model,
            train_data,
            remove_labels=remove_labels,
            trust_remote_code=trust_remote_code,
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
        )
    if remove_labels:
        raise ConfigError(
            "remove_labels drops labels of an exported classifier; this model is not one. "
            "Adapt the meta-trained model to exactly the labels you want instead."
        )
    # The data and settings are checked before anything is loaded: a bad file fails at once.
    checked = ("inner_steps", "inner_learning_rate", "max_length", "support_batch_size")
    check_adapt_options(**{k: options.get(k) for k in checked})
    source, labels = training_source(
        train_data,
        text_column=text_column,
        label_column=label_column,
        text_pair_column=text_pair_column,
        labels=labels,
    )
    model = _few_shot_model(model, tokenizer, trust_remote_code)
    return model.adapt(source, labels=labels, **options)


def _few_shot_model(model, tokenizer, trust_remote_code: bool) -> FewShotModel:
    """A folder (meta-trained or any checkpoint) or a model object, as a ``FewShotModel``."""
    if isinstance(model, (str, os.PathLike)):
        model = FewShotModel.from_pretrained(model, trust_remote_code=trust_remote_code)
        if tokenizer is not None:
            model.tokenizer = model.collator.tokenizer = tokenizer
        if not model.meta_trained:
            warnings.warn(
                f"{model.path} is not a meta-trained fewshot-nlp run (no fewshot_nlp.json): "
                "adapting it as a plain checkpoint with default settings.",
                stacklevel=3,
            )
    elif not isinstance(model, FewShotModel):
        if tokenizer is None:
            raise DataError(
                "adapt() needs a tokenizer when given a model object: pass tokenizer=..."
            )
        config = replace(plain_checkpoint_config(model), support_batch_size=DEFAULT_SUPPORT_BATCH)
        model = FewShotModel(MAML(model.eval(), config), tokenizer)
    return model


def _refuse_settings_for_growth(model, labels, options: dict) -> None:
    """An export grows with the settings it was fitted with: adaptation settings and a
    label list belong to adapting a meta-trained model."""
    if labels is not None:
        raise ConfigError(
            f"{model} is an exported classifier: labels are added to it by their examples "
            "(train_data). A label without examples cannot be added to an export; to classify "
            "by label names alone, adapt the meta-trained model with labels=[...]."
        )
    given = [k for k, v in options.items() if v is not None and (k, v) != ("merge_lora", True)]
    if given:
        raise ConfigError(
            f"{model} is an exported classifier: adapting it adds train_data's labels (and "
            "drops remove_labels) on its stored features, with the settings it was fitted "
            f"with; {sorted(given)} apply to "
            "adapting a meta-trained model."
        )
