"""``adapt_with_unlabeled``: the core adaptation, then its head self-trained on a pool of
unlabeled texts read by the exported encoder, kept only where the k-fold rule says the pool
helps. The pseudo-labelled rows join the class memory (at their weight), so a later growth
refits on what this head was fitted on."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch

from ..classifier.adaptation import adapt, load_run, reader_of
from ..classifier.arguments import AdaptationArguments
from ..classifier.class_memory import append_rows, is_exported_classifier
from ..classifier.growth import refit
from ..classifier.record import AdaptationRecord
from ..data.sources import training_source
from ..errors import ConfigError
from ..modeling.head import EpisodeHead
from .arguments import UnlabeledArguments
from .pool import UnlabeledPool, read_pool
from .self_training import Fit, PoolCheck, check_pool, self_train

FEATURE_BATCH = 256  # pool texts per progress-bar step


def adapt_with_unlabeled(
    model,
    train_data=None,
    unlabeled: str | os.PathLike | Sequence[str] | None = None,
    args: AdaptationArguments | None = None,
    unlabeled_args: UnlabeledArguments | None = None,
    *,
    labels: Sequence[str] | None = None,
    tokenizer=None,
    trust_remote_code: bool = False,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    progress: bool = True,
):
    """``adapt`` that also reads ``unlabeled`` texts of the same kind (a file or a list;
    default ``unlabeled_args.unlabeled_data``); a standard classifier either way, whose
    record (and model card) says what the pool was and whether it went in."""
    options = unlabeled_args or UnlabeledArguments()
    args = args or AdaptationArguments()
    data = unlabeled if unlabeled is not None else options.unlabeled_data
    if data is None:
        raise ConfigError(
            "adapt_with_unlabeled needs unlabeled texts: unlabeled=[...] or a file "
            "(CLI: --unlabeled_file texts.txt)."
        )
    check_request(args, text_pair_column)
    if isinstance(model, (str, os.PathLike)) and is_exported_classifier(model):
        raise ConfigError(
            f"{model} is an exported classifier: a pool is read when adapting a meta-trained "
            "model (or a checkpoint). Adapt that with all the labelled examples and the pool."
        )
    # the request, the labelled data and the pool are read before the model is loaded
    reading = dict(text_column=text_column, label_column=label_column)
    source, _ = training_source(
        train_data, labels=labels, text_pair_column=text_pair_column, **reading
    )
    pool = read_pool(
        data,
        labelled=source.texts if source is not None else (),
        max_unlabeled=options.max_unlabeled,
        text_column=text_column,
        seed=options.pool_seed,
    )
    run = load_run(model, tokenizer, trust_remote_code)
    classifier = adapt(run, source, args, labels=labels, **reading)
    return with_pool(classifier, run.tokenizer, pool, options, progress)


def check_request(args: AdaptationArguments, text_pair_column) -> None:
    """What a pool cannot be combined with, refused before anything is read."""
    if args.unknown_label:
        raise ConfigError(
            "An unlabeled pool and unknown_label do not go together yet: the rejection "
            "threshold is fitted on held-out labelled examples, which self-training would "
            "change. Adapt with one of them."
        )
    if text_pair_column is not None:
        raise ConfigError("An unlabeled pool is for single texts; this task has text pairs.")


def with_pool(classifier, tokenizer, pool: UnlabeledPool, options, progress: bool = True):
    """The adapted ``classifier`` with its head self-trained on ``pool`` (when the rule says
    so), its memory and record updated."""
    memory = getattr(classifier, "fewshot_nlp_classes", None)
    if memory is None:  # an unmerged adapter keeps no rows to refit
        raise ConfigError("An unlabeled pool needs the adapter merged (merge_lora=True).")
    reader = reader_of(classifier, tokenizer, memory.max_length)
    pool_features = pool_features_of(reader, pool.texts, progress)
    head = EpisodeHead(memory.head_init, memory.logit_scale, memory.regularization)
    n_way = len(memory.label_names)
    fit = head_fit(head, n_way)
    x, y, w = memory.features, memory.labels, memory.weights
    if options.pool_rule == "kfold":
        check = check_pool(fit, x, y, w, memory.is_name, pool_features, n_way, options)
    else:
        check = None
    used = check is None or check.helps
    record = AdaptationRecord.of(classifier)
    pseudo = 0
    if used:
        _, chosen = self_train(fit, x, y, w, pool_features, n_way, options)
        grown = copy.copy(memory)
        append_rows(grown, pool_features[chosen.index], chosen.labels, chosen.weight, False)
        classifier, _ = refit(reader, grown)
        classifier.fewshot_nlp_classes = grown
        pseudo = len(chosen.index)
    record.unlabeled = _pool_record(pool, options, check, used, pseudo)
    record.attach(classifier)
    return classifier


def head_fit(head: EpisodeHead, n_way: int) -> Fit:
    """``self_train``'s fit for one of our heads: fitted on the rows' normalised features
    (as the adaptation does), scoring features the same way."""

    def fit(features, labels, weights):
        weight, bias = head.fit(features, labels, n_way, weights)
        return lambda feats: head.logits(feats, weight, bias)

    return fit


def pool_features_of(reader, texts: list[str], progress: bool = True) -> torch.Tensor:
    """The head-input features of the pool, in batches behind a progress bar."""
    from tqdm.auto import tqdm

    batches = range(0, len(texts), FEATURE_BATCH)
    out = [
        reader.features(texts[i : i + FEATURE_BATCH]).float()
        for i in tqdm(batches, desc="Reading unlabeled texts", unit="batch", disable=not progress)
    ]
    return torch.cat(out)


def _pool_record(pool, options, check: PoolCheck | None, used: bool, pseudo: int) -> dict:
    return {
        "pool": pool.to_dict(),
        "rule": options.pool_rule,
        "used": used,
        "check": None if check is None else check.to_dict(),
        "rounds": options.self_training_rounds,
        "share": options.pseudo_label_share,
        "weight": options.pseudo_label_weight,
        "pseudo_labelled": pseudo,
    }
