"""A run (or any checkpoint) + texts with several labels each -> a standard multi-label
classifier: ``problem_type: "multi_label_classification"``, one sigmoid per label, on at
>= 0.5 (``pipeline()`` and ``AutoModelForSequenceClassification`` need no custom code)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..classifier.adaptation import load_run
from ..classifier.record import AdaptationRecord
from ..data.labels import label_name_text
from ..errors import ConfigError, DataError, ModelError
from ..modeling.head import set_head
from ..modeling.lora import is_peft
from ..modeling.normalized_pooling import normalize_pooled_features
from .arguments import MultiLabelArguments
from .data import MultiLabelData, multilabel_data
from .head import fit_multilabel_head, multilabel_scores
from .memory import MultiLabelMemory

PROBLEM_TYPE = "multi_label_classification"
AUTO_MARGIN = 0.1  # label_names='auto': how much better than tagging everything the names do

__all__ = ["PROBLEM_TYPE", "adapt_multilabel"]


def adapt_multilabel(
    model,
    train_data: Sequence | MultiLabelData | None = None,
    args: MultiLabelArguments | None = None,
    *,
    labels: Sequence[str] | None = None,
    tokenizer=None,
    trust_remote_code: bool = False,
):
    """Adapt to ``train_data``: ``(text, [labels])`` pairs (a list may be empty: none of the
    labels) or a ``MultiLabelData``; ``labels``: the label set in order (those without
    examples are classified from their names, 0-shot). Returns a ``PreTrainedModel``."""
    args = args or MultiLabelArguments()
    data = multilabel_data(train_data if train_data is not None else [], labels=labels)
    _check_request(data, args)
    run = run_for(load_run(model, tokenizer, trust_remote_code), args)
    return build_classifier(run, data, args)


def build_classifier(
    run, data: MultiLabelData, args: MultiLabelArguments, *, known=None, previous=None
):
    """The exported classifier of ``data`` on ``run``'s encoder: the head fitted, the record
    and the memory attached. ``known``: features of the first rows (a growth's stored
    examples); ``previous``: the record of the export being grown."""
    fit, features, names = fit_on_run(run, data, args, known=known)
    normalized = run.maml.mean_pooling  # the export then reads the normalised embedding
    classifier = copy.deepcopy(run.model)
    if is_peft(classifier):
        classifier = classifier.merge_and_unload()
    head = run.maml.head_name
    set_head(classifier, head, fit.weight, fit.bias, data.names)
    if normalized:
        probe = torch.cat([features, names]) if names is not None else features
        normalize_pooled_features(classifier, fit.weight, probe)  # its bias: 0
        with torch.no_grad():
            classifier.get_submodule(head).bias.copy_(fit.bias)
    classifier.config.problem_type = PROBLEM_TYPE
    _record(run, data, args, fit, normalized, previous, names is not None).attach(classifier)
    classifier.fewshot_nlp_classes = MultiLabelMemory(features, data.matrix(), list(data.names))
    return classifier.eval()


def run_for(run, args: MultiLabelArguments):
    """The run reading texts at this call's length (a new object, never ``run`` changed). A
    plain BERT checkpoint reads its sentence embedding (mean pooling, a standard class): its
    [CLS] pooler scored 58.8 micro-F1 against 72.5 at 5 shots on MixSNIPS' pool."""
    if not run.maml.mean_pooling and not run.meta_trained:
        run = _mean_pooling(run)
    if args.max_length is not None and args.max_length != run.collator.max_length:
        return run.with_max_length(args.max_length)
    return run


def _mean_pooling(run):
    from ..meta.config import plain_checkpoint_config
    from ..meta.maml import MAML
    from ..meta.model import FewShotModel
    from ..modeling.pooling import mean_pooling_classifier

    try:
        model, tokenizer = mean_pooling_classifier(run.model, run.tokenizer)  # a new model
    except ModelError:  # not a BERT: its own head input it is
        return run
    maml = MAML(model.eval(), plain_checkpoint_config(model))
    length = run.collator.max_length
    return FewShotModel(maml, tokenizer, max_length=length, info=run.info, cache_features=True)


def fit_on_run(run, data: MultiLabelData, args: MultiLabelArguments, *, known=None):
    """``(MultiLabelFit, support features, name features or None)``: the head on the run's
    (normalised, for a mean-pooling run) sentence embeddings; ``known``: those of the first
    rows, already read."""
    normalized = run.maml.mean_pooling
    done = 0 if known is None else len(known)
    features = read_features(run, data.texts[done:], normalized)
    if known is not None:
        features = torch.cat([known.to(features), features])
    names = None
    if args.label_names != "never":
        names = read_features(run, [label_name_text(n) for n in data.names], normalized)
        if args.label_names == "auto" and not names_tag(names, features, data, args, normalized):
            names = None
    fit = fit_multilabel_head(features, data.matrix(), names, args, normalized=normalized)
    return fit, features, names


def names_tag(names, features, data: MultiLabelData, args, normalized: bool) -> bool:
    """``label_names='auto'``: whether a head fitted on the names alone tags the support
    examples clearly better (micro-F1 + 0.1) than turning every label on (no examples: yes)."""
    if not len(features):
        return True
    targets = data.matrix()
    alone = fit_multilabel_head(features[:0], targets[:0], names, args, normalized=normalized)
    tagged = features @ alone.weight.T + alone.bias > 0
    density = float(targets.mean())
    everything = 2 * density / (1 + density)  # F1 of turning every label on
    return multilabel_scores(tagged, targets.bool())["micro_f1"] >= everything + AUTO_MARGIN


def _check_request(data: MultiLabelData, args: MultiLabelArguments) -> None:
    if args.label_names == "never":
        used = {label for labels in data.labels for label in labels}
        missing = [n for n in data.names if n not in used]
        if missing:
            raise ConfigError(
                f"{len(missing)} label(s) appear in no example ({', '.join(missing[:3])}) and "
                "label_names='never': nothing says what they are. Give them examples, or "
                "use label_names='always' to classify them from their names."
            )
    if not data.texts and args.label_names == "never":
        raise DataError("No examples and label_names='never': give labelled examples.")


def read_features(run, texts: list[str], normalized: bool) -> torch.Tensor:
    """What the multi-label head reads: the run's head features, normalised or not."""
    if not texts:
        return torch.zeros(0, run.model.config.hidden_size)
    features = run.features(texts).float()
    return F.normalize(features, dim=-1) if normalized else features


def _record(run, data, args: MultiLabelArguments, fit, normalized, previous, names_used):
    used = {label for labels in data.labels for label in labels}
    zero_shot = [n for n in data.names if n not in used]
    held_out = fit.held_out and dict(
        fit.held_out, per_label_f1=dict(zip(data.names, fit.held_out["per_label_f1"]))
    )
    info = run.info
    record = AdaptationRecord(
        classes=len(data.names),
        examples=len(data.texts),
        adapt_head_init="logreg",
        label_names_used=names_used,
        inner_steps=0,
        zero_shot_classes=zero_shot,
        meta_trained=run.meta_trained,
        meta_training=info.get("meta_training"),
        base_model=info.get("base_model"),
        base_encoder=run.base_encoder or run.path,
        multi_label={
            "threshold": args.threshold,
            "normalized": normalized,
            "thresholds": dict(zip(data.names, fit.thresholds)),
            "mixtures": args.mixtures,
            "label_name_weight": args.label_name_weight,
            "regularization": args.regularization,
            "held_out": held_out,
            "notes": fit.notes,
            "empty_examples": sum(1 for labels in data.labels if not labels),
            "label_names": args.label_names,
            "max_length": run.collator.max_length,
            "seed": args.seed,
            "folds": args.folds,
        },
    )
    if previous is not None:  # a growth: the run it came from is the export's
        for key in ("meta_trained", "meta_training", "base_model", "base_encoder"):
            setattr(record, key, getattr(previous, key))
    return record
