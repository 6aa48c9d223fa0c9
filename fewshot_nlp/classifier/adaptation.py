"""A meta-trained run (or any checkpoint) + a few labelled examples of new classes -> a
standard classifier, carrying its adaptation record and class memory."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace

import torch

from ..data.sources import training_source
from ..errors import ConfigError, DataError, TrainingError
from ..meta.config import plain_checkpoint_config
from ..meta.maml import HEAD_BIAS, HEAD_WEIGHT, MAML
from ..meta.model import DEFAULT_SUPPORT_BATCH, FewShotModel
from ..modeling.head import NORMALIZED_HEAD_INITS, set_head
from ..modeling.lora import is_peft
from .arguments import AdaptationArguments
from .class_memory import class_memory_for, is_exported_classifier
from .record import AdaptationRecord
from .rejection import attach_rejection, check_rejection_label, rejection_examples
from .texts import warn_truncation, warn_unreadable_names

__all__ = ["adapt"]


def adapt(
    model,
    train_data=None,
    args: AdaptationArguments | None = None,
    *,
    labels: Sequence[str] | None = None,
    tokenizer=None,
    merge_lora: bool = True,
    trust_remote_code: bool = False,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    **settings,
):
    """Adapt to ``train_data``'s classes (or ``labels``: the class names, some or all without
    examples, for 0-shot); returns a ``PreTrainedModel`` with their names.

    ``model``: a ``FewShotModel``, a meta-trained folder (its recorded adaptation is
    replayed), or any sequence-classification checkpoint or model object (head-only logistic
    regression, with a warning). ``args``: how (``AdaptationArguments``). ``merge_lora``:
    False keeps a LoRA run's adapter unmerged (``export(..., keep_adapter=True)``).

    Deprecated, for one release: the settings as keywords (``adapt(model, data,
    inner_steps=0)``), and an exported classifier as ``model`` (use ``grow``).
    """
    given = args is not None or any(k != "remove_labels" for k in settings)
    args = _with_deprecated_settings(args, settings)
    reading = dict(text_column=text_column, label_column=label_column)
    reading.update(text_pair_column=text_pair_column)
    if isinstance(model, (str, os.PathLike)) and is_exported_classifier(model):
        refused = labels is not None or given
        remove = settings.get("remove_labels")
        return _grow_instead(model, train_data, remove, refused, trust_remote_code, reading)
    if settings.get("remove_labels"):
        raise ConfigError(
            "remove_labels drops labels of an exported classifier; this model is not one. "
            "Adapt the meta-trained model to exactly the labels you want instead."
        )
    # The request, then the data, are checked before anything is loaded.
    if args.unknown_label and labels is not None:
        check_rejection_label(args.unknown_label, labels)
    source, names = training_source(train_data, labels=labels, **reading)
    unknown = rejection_examples(args, names, source, text_column, label_column)
    run = load_run(model, tokenizer, trust_remote_code)
    return fit_classifier(run, source, names, args, merge_lora=merge_lora, unknown=unknown)


def _grow_instead(model, train_data, remove_labels, refused, trust_remote_code, reading):
    """The API of earlier releases: ``adapt`` on an exported classifier grows it (with the
    settings it was fitted with: ``refused`` when others are given)."""
    from .growth import grow

    if refused:
        raise ConfigError(
            f"{model} is an exported classifier: it grows by train_data's labels (and drops "
            "remove_labels) on its stored features, with the settings it was fitted with. "
            "Adaptation settings and a label list without examples apply to adapting a "
            "meta-trained model (to classify by label names alone, adapt that with labels=[...])."
        )
    warnings.warn(
        "adapt() on an exported classifier grows it; call grow(export, train_data, "
        "remove_labels=...) instead (adapt() will stop doing so in the next release).",
        FutureWarning,
        stacklevel=3,
    )
    return grow(
        model,
        train_data,
        remove_labels=remove_labels,
        trust_remote_code=trust_remote_code,
        **reading,
    )


def _with_deprecated_settings(args, settings: dict) -> AdaptationArguments:
    """``args`` with the settings given as keywords (the API of earlier releases)."""
    known = {f.name for f in fields(AdaptationArguments)}
    given = {k: v for k, v in settings.items() if k != "remove_labels"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"adapt() got unknown settings {unknown}; the settings are the fields of "
            f"AdaptationArguments: {sorted(known)}."
        )
    args = args or AdaptationArguments()
    if given:
        warnings.warn(
            f"adapt(..., {', '.join(f'{k}=...' for k in given)}) is deprecated: pass "
            "args=AdaptationArguments(...) (the keywords stop working in the next release).",
            FutureWarning,
            stacklevel=3,
        )
        args = replace(args, **given)
    return args


def load_run(model, tokenizer, trust_remote_code: bool) -> FewShotModel:
    """A folder (meta-trained or any checkpoint) or a model object, as a ``FewShotModel``."""
    if isinstance(model, FewShotModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        run = FewShotModel.from_pretrained(
            model, trust_remote_code=trust_remote_code, tokenizer=tokenizer
        )
        if not run.meta_trained:
            warnings.warn(
                f"{run.path} is not a meta-trained fewshot-nlp run (no fewshot_nlp.json): "
                "adapting it as a plain checkpoint with default settings.",
                stacklevel=3,
            )
        return run
    if tokenizer is None:
        raise DataError("adapt() needs a tokenizer when given a model object: pass tokenizer=...")
    config = replace(plain_checkpoint_config(model), support_batch_size=DEFAULT_SUPPORT_BATCH)
    return FewShotModel(MAML(model.eval(), config), tokenizer)


def fit_classifier(
    run: FewShotModel,
    source,
    names: list[str],
    args: AdaptationArguments,
    *,
    merge_lora: bool = True,
    unknown: list[str] | None = None,
):
    """Adapt ``run`` on ``source`` (or the names alone) under ``args``, then package the
    classifier: rejection label, record, class memory."""
    if run.tokenizer is None:
        raise DataError("adapt needs a tokenizer: FewShotModel(maml, tokenizer).")
    nameless, label_names, note = _nameless_classes(run, names, source, args.label_names)
    warn_unreadable_names(run.tokenizer, names)
    run = _run_for(run, replace(args, label_names=label_names), names)
    texts = source.texts if source is not None else []
    pairs = source.text_pairs if source is not None else None
    if texts:
        warn_truncation(run.collator, texts, pairs)
    ids = {name: i for i, name in enumerate(names)}
    label_ids = [ids[y] for y in (source.labels if source is not None else [])]
    fast, metrics = run.adapt_weights(
        texts, label_ids, len(names), pairs=pairs, label_names=names, source="train_data"
    )
    if metrics.get("cv_fallback"):
        warnings.warn(f"adapt: {metrics['cv_fallback']}.", stacklevel=3)
    if note:
        warnings.warn(f"adapt: {note}", stacklevel=3)
    classifier = adapted_copy(run, fast, names, merge_lora=merge_lora)
    record = _record(run, metrics, len(names), len(texts), nameless, note)
    rejection = None
    if args.unknown_label:
        rejection = attach_rejection(
            run, classifier, metrics, texts, label_ids, names, args, unknown
        )
        record.rejection = rejection.to_dict()
    record.attach(classifier)
    if not is_peft(classifier):  # an unmerged adapter's export cannot grow
        # a head-only adaptation without a rejection layer reads as the run does
        same_encoder = set(fast) <= {HEAD_WEIGHT, HEAD_BIAS} and rejection is None
        reader = (
            run if same_encoder else reader_of(classifier, run.tokenizer, run.collator.max_length)
        )
        classifier.fewshot_nlp_classes = class_memory_for(
            reader,
            run.config,
            classifier,
            texts,
            pairs,
            label_ids,
            names,
            metrics,
            rejection,
            unknown=unknown,
        )
    return classifier


def reader_of(classifier, tokenizer, max_length: int) -> FewShotModel:
    """The exported ``classifier`` reading texts as the run did (its tokenizer and length):
    its head inputs are the features the export computes (what a later growth reads new
    texts with)."""
    maml = MAML(classifier, plain_checkpoint_config(classifier))
    return FewShotModel(maml, tokenizer, max_length=max_length)


def _run_for(run: FewShotModel, args: AdaptationArguments, names: list[str]) -> FewShotModel:
    """The run under this call's settings (a new object, never ``run`` changed), checked
    against them."""
    changes = args.config_changes()
    if changes:
        run = run.with_config(**changes)
    if args.max_length is not None and args.max_length != run.collator.max_length:
        run = run.with_max_length(args.max_length)
    run.config.check_adaptation()
    if not args.unknown_label:
        return run
    check_rejection_label(args.unknown_label, names)
    head = run.config.adaptation_head_init
    if run.maml.mean_pooling and head not in NORMALIZED_HEAD_INITS:
        raise ConfigError(
            f"unknown_label on a mean-pooling model needs a head fitted on normalised "
            f"features ({', '.join(NORMALIZED_HEAD_INITS)}), so that its threshold reads "
            f"the same whatever the padding; adapt_head_init {head!r} is not one. Choose "
            "one of those heads, or drop unknown_label."
        )
    return run


def _nameless_classes(run: FewShotModel, names, source, label_names):
    """The classes without examples (classified by their names alone), the ``label_names``
    setting that can classify them, and what they are scored by when the run never
    meta-trained with names (a note for the user and the card)."""
    have = set(source.label_index) if source is not None else set()
    nameless = [n for n in names if n not in have]
    if nameless and label_names == "never":
        raise ConfigError(
            f"{len(nameless)} class(es) have no examples ({', '.join(nameless[:3])}), so "
            "their names are all there is: label_names='never' cannot classify them. Give "
            "them examples, or use label_names 'always'."
        )
    trained_names = run.meta_trained and run.config.label_names != "never"
    note = None
    if nameless and not trained_names:
        note = (
            f"{len(nameless)} class(es) have no examples and this model's label names were "
            "never meta-trained: they are classified by the base encoder's similarity to "
            "their names (label-name cosine)."
        )
    if nameless and run.config.label_names == "never":
        label_names = "auto"  # the run never used names, but these classes have nothing else
    return nameless, label_names, note


def _record(run: FewShotModel, metrics: dict, classes, examples, nameless, note):
    """What the adaptation did, for the model card."""
    config, info = run.config, run.info
    return AdaptationRecord(
        classes=classes,
        examples=examples,
        zero_shot_classes=nameless,
        zero_shot_note=note,
        inner_steps=metrics["inner_steps"],
        inner_learning_rate=config.inner_learning_rate,
        adapt_scope=config.adapt_scope,
        adapt_head_init=config.adaptation_head_init,
        adapt_step_candidates=config.adapt_step_candidates,
        cv_accuracy=metrics.get("cv_accuracy"),
        cv_fallback=metrics.get("cv_fallback"),
        label_names_used=bool(metrics.get("label_names_used")),
        label_name_accuracy=metrics.get("label_name_accuracy"),
        support_loss_before=metrics.get("support_loss_before"),
        meta_trained=run.meta_trained,
        meta_training=info.get("meta_training"),
        base_model=info.get("base_model"),
        base_encoder=run.base_encoder or run.path,
    )


def adapted_copy(run: FewShotModel, fast: dict[str, torch.Tensor], names, *, merge_lora=True):
    """A copy of the run's model holding the adapted weights and a head named by the labels."""
    bad = [name for name, value in fast.items() if not torch.isfinite(value).all()]
    if bad:
        raise TrainingError(
            f"Adaptation produced non-finite weights ({', '.join(bad[:3])}): nothing was "
            "exported. Lower the inner learning rate or the steps, or check the examples."
        )
    classifier = copy.deepcopy(run.model)
    params = dict(classifier.named_parameters())
    with torch.no_grad():
        for name in run.maml.fast_names:
            if name in fast:  # after 0 steps only the head is adapted
                params[name].copy_(fast[name])
    if hasattr(classifier, "peft_config") and merge_lora:
        classifier = classifier.merge_and_unload()
    set_head(classifier, run.maml.head_name, fast[HEAD_WEIGHT], fast[HEAD_BIAS], list(names))
    return classifier.eval()
