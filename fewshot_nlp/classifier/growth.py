"""Grow or shrink an exported classifier: add labels (or shots) and remove labels without
the old training texts, from the class memory its export keeps (``class_memory``).

The encoder stays as exported: the new texts are read by it, so their features sit beside
the stored ones (which the same encoder computed), and the head is refitted on all rows by
the rule that fitted it first. If the first adaptation changed encoder weights, those
changed weights are what both old and new rows were read with; nothing is re-adapted.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence

import torch

from ..data.labels import label_name_text, warn_alike_labels
from ..data.sources import labelled_source
from ..errors import ConfigError, DataError, ModelError
from ..meta.cross_validation import stratified_folds
from ..meta.model import FewShotModel
from ..modeling.head import EpisodeHead, set_head
from ..modeling.rejection import add_rejection_output
from .class_memory import (
    CLASS_MEMORY_FILE,
    ClassMemory,
    add_name_rows,
    append_rows,
    encoder_fingerprint,
    rejection_settings,
)
from .record import AdaptationRecord
from .rejection import REJECTION_FOLDS, check_rejection_support, fit_rejection


def grow(
    model: str | os.PathLike,
    train_data=None,
    *,
    remove_labels: Sequence[str] | None = None,
    trust_remote_code: bool = False,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
):
    """The exported classifier at ``model`` with ``train_data``'s new labels added (examples
    of a label it has add to that label) and ``remove_labels`` dropped: a classifier of the
    same kind, with its own class memory. ``model`` is only read."""
    memory = ClassMemory.load(model)
    if memory is None:
        raise ModelError(
            f"{model} has no {CLASS_MEMORY_FILE}: it was exported before labels could be added "
            "(or as an unmerged adapter). Re-adapt once from the meta-trained model with all "
            "the training examples; that export can then grow."
        )
    remove = list(dict.fromkeys(remove_labels or []))
    rejection_label = (memory.rejection or {}).get("label")
    drop_rejection = rejection_label is not None and rejection_label in remove
    if drop_rejection:  # the export without its "none of these" label
        remove.remove(rejection_label)
        memory.rejection, memory.unknown_features = None, None
    source, given = None, []
    if train_data is not None:  # one label is enough here: the others are in the memory
        source = labelled_source(train_data, text_column, label_column, text_pair_column)
        given = source.label_names
    names = _label_plan(memory, given, remove, model, dropping_rejection=drop_rejection)
    _check_rejection_rows(memory, source, names)
    reader = FewShotModel.from_pretrained(
        model, max_length=memory.max_length, trust_remote_code=trust_remote_code
    )
    if encoder_fingerprint(reader.model, reader.maml.head_name) != memory.encoder_fingerprint:
        raise ModelError(
            f"The encoder in {model} is not the one its {CLASS_MEMORY_FILE} was computed with "
            "(its weights changed since the export, or the file comes from another model). "
            "Re-adapt from the meta-trained model with all the training examples."
        )
    grown = _rows_for(memory, names)
    if source is not None:
        ids = {name: i for i, name in enumerate(names)}
        feats = reader.features(source.texts, source.text_pairs).float()
        labels = torch.as_tensor([ids[y] for y in source.labels])
        feats, labels = _without_stored_examples(grown, feats, labels)
        append_rows(grown, feats, labels, 1.0, False)
    added = [n for n in names if n not in memory.label_names]
    if memory.names_used and added:
        add_name_rows(grown, reader, [names.index(n) for n in added])
    classifier, rejection = refit(reader, grown)
    grown.encoder_fingerprint = encoder_fingerprint(classifier, reader.maml.head_name)
    classifier.fewshot_nlp_classes = grown
    removed = remove + ([rejection_label] if drop_rejection else [])
    record = _growth_record(model, memory, grown, given, removed)
    if rejection is not None:
        record.rejection = rejection.to_dict()
    record.attach(classifier)
    return classifier


def _check_rejection_rows(memory: ClassMemory, source, names: list[str]) -> None:
    """A rejection threshold is re-chosen on held-out rows: every class needs 2 (stored ones
    plus new ones), checked before any work."""
    if not memory.rejection:
        return
    stored = memory.labels[~memory.is_name].tolist()
    have = {n: stored.count(memory.label_names.index(n)) for n in memory.label_names}
    for name, rows in (source.label_index if source is not None else {}).items():
        have[name] = have.get(name, 0) + len(rows)
    check_rejection_support({n: have.get(n, 0) for n in names}, memory.rejection["label"])


def _growth_record(
    model, memory: ClassMemory, grown: ClassMemory, given, remove
) -> AdaptationRecord:
    """What the growth did, for the model card."""
    return AdaptationRecord(
        classes=len(grown.label_names),
        examples=int((~grown.is_name).sum()),
        grown_from=str(model),
        added_labels=[n for n in grown.label_names if n not in memory.label_names],
        removed_labels=list(remove),
        more_examples=[n for n in dict.fromkeys(given) if n in memory.label_names],
        adapt_head_init=grown.head_init,
        label_names_used=bool(grown.names_used),
    )


def _without_stored_examples(memory: ClassMemory, feats, labels):
    """New rows minus those the memory already holds under the same label (an export's own
    examples given again would count twice): left out, with a warning."""
    real = ~memory.is_name
    stored, stored_labels = memory.features[real], memory.labels[real]
    if not len(stored) or not len(feats):
        return feats, labels
    tolerance = 1e-4 * float(stored.norm(dim=-1).max())
    same = (torch.cdist(feats, stored) <= tolerance) & (labels[:, None] == stored_labels[None])
    again = same.any(1)
    if again.any():
        warnings.warn(
            f"{int(again.sum())} of {len(labels)} examples are already in the classifier "
            "under the same label: left out, so that they do not count twice.",
            stacklevel=4,
        )
    return feats[~again], labels[~again]


def _label_plan(
    memory: ClassMemory, given: list[str], remove: list[str], where, dropping_rejection=False
) -> list[str]:
    """The classes after the change: the old ones in order minus the removed, then the new."""
    old = memory.label_names
    unknown = [n for n in remove if n not in old]
    if unknown:
        raise ConfigError(
            f"Cannot remove {unknown}: {where} has no such label (its labels: {old[:10]}"
            + (" ..." if len(old) > 10 else "")
            + ")."
        )
    both = [n for n in given if n in remove]
    if both:
        raise ConfigError(f"Labels {both} are both removed and given examples: choose one.")
    rejection = (memory.rejection or {}).get("label")
    if rejection and rejection in given:
        raise DataError(
            f"{rejection!r} is this classifier's rejection label: examples of it cannot be "
            "added as a class."
        )
    if not given and not remove and not dropping_rejection:
        raise ConfigError("Nothing to change: give train_data (labels to add) or remove_labels.")
    names = [n for n in old if n not in remove] + [n for n in dict.fromkeys(given) if n not in old]
    warn_alike_labels(names, f"Growing {where}", stacklevel=4)
    if len(names) < 2:
        raise ConfigError(
            f"Removing {remove} would leave {len(names)} label(s): a classifier needs 2."
        )
    return names


def _rows_for(memory: ClassMemory, names: list[str]) -> ClassMemory:
    """The stored rows of the classes kept, relabelled to ``names``' order."""
    index = {name: i for i, name in enumerate(names)}
    old = [index.get(name, -1) for name in memory.label_names]
    relabelled = torch.as_tensor(old, dtype=torch.long)[memory.labels]
    keep = relabelled >= 0
    grown = copy.copy(memory)
    grown.features, grown.labels = memory.features[keep], relabelled[keep]
    grown.weights, grown.is_name = memory.weights[keep], memory.is_name[keep]
    grown.label_names = list(names)
    return grown


def refit(reader, memory: ClassMemory):
    """A copy of the loaded classifier whose head is refitted on every row, and the new
    rejection fit if it has a rejection label (re-chosen on the same rows)."""
    head = EpisodeHead(memory.head_init, memory.logit_scale, memory.regularization)
    n_way = len(memory.label_names)
    weight, bias = _fit_standard(head, memory, torch.ones_like(memory.is_name), n_way)
    base = reader.model
    classifier = copy.deepcopy(base)
    set_head(classifier, reader.maml.head_name, weight, bias, memory.label_names)
    fit = None
    if memory.rejection:
        fit = _refit_rejection(head, memory, n_way, weight, bias)
        memory.rejection = rejection_settings(fit)
        probe = reader.encode([label_name_text(n) for n in memory.label_names[:16]])
        probe.pop("token_type_ids", None)
        add_rejection_output(classifier, fit.label, fit.threshold, fit.temperature, probe)
    return classifier.eval(), fit


def _fit_standard(head: EpisodeHead, memory: ClassMemory, rows: torch.Tensor, n_way: int):
    """The head on raw features from the chosen rows (the adaptation's rule: fit on the
    normalised rows, then divide by the examples' mean norm)."""
    feats, labels = memory.features[rows], memory.labels[rows]
    weight, bias = head.fit(feats, labels, n_way, memory.weights[rows])
    real = feats[~memory.is_name[rows]]
    norm = (real if len(real) else feats).norm(dim=-1).mean().item()
    return head.standard(weight, bias, norm)


def _refit_rejection(head, memory: ClassMemory, n_way: int, weight, bias):
    """Threshold and temperature re-chosen on the stored rows: k-fold over the examples
    (label names always in the fit), by the rule the first adaptation recorded."""
    settings = memory.rejection
    real = ~memory.is_name
    labels = memory.labels[real]
    counts = torch.bincount(labels, minlength=n_way)
    folds = min(REJECTION_FOLDS, int(counts.min()))  # >= 2: checked before the work
    loss = settings.get("max_in_scope_loss")
    fold_of = torch.full((len(memory.labels),), -1, dtype=torch.long)
    fold_of[real] = stratified_folds(labels, n_way, folds)
    held = torch.full((len(labels), n_way), float("nan"))
    outside = memory.unknown_features  # the export's out-of-scope examples, if it had some
    unknown = [] if outside is not None else None
    for fold in range(folds):
        w, b = _fit_standard(head, memory, fold_of != fold, n_way)
        rows = fold_of[real] == fold
        held[rows] = (memory.features[real][rows] @ w.T + b).float()
        if outside is not None:
            unknown.append((outside @ w.T + b).float())
    return fit_rejection(
        held,
        labels,
        label=settings["label"],
        max_in_scope_loss=loss,
        folds=folds,
        unknown_logits=unknown,
    )
