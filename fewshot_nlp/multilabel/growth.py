"""Growing a multi-label export: labels added (from their own examples) or removed, on the
embeddings it stored, without the old texts. Old examples were never labelled with a new
label, so they count as its negatives; a removed label's examples stay, as negatives of the
rest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..classifier.record import AdaptationRecord
from ..data.labels import preview
from ..errors import ConfigError, DataError
from ..meta.config import plain_checkpoint_config
from ..meta.maml import MAML
from ..meta.model import FewShotModel
from ..modeling.normalized_pooling import without_normalized_layer
from .adaptation import PROBLEM_TYPE, build_classifier
from .arguments import MultiLabelArguments
from .data import MultiLabelData, multilabel_data
from .memory import MultiLabelMemory

RECORDED = ("label_names", "label_name_weight", "mixtures", "regularization", "threshold")


def is_multilabel_export(path: str | os.PathLike) -> bool:
    """Whether a folder holds a multi-label classifier (its config's ``problem_type``)."""
    import json

    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("problem_type") == PROBLEM_TYPE
    except (OSError, ValueError):
        return False


def grow_multilabel(
    export: str | os.PathLike,
    train_data: Sequence | MultiLabelData | None = None,
    *,
    remove_labels: Sequence[str] | None = None,
    trust_remote_code: bool = False,
):
    """``export`` with ``train_data``'s labels added (or more examples of its own) and
    ``remove_labels`` dropped, refitted as it was fitted; returns the new classifier."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    memory = MultiLabelMemory.load(export)
    remove = list(remove_labels or [])
    unknown = [n for n in remove if n not in memory.label_names]
    if unknown:
        raise ConfigError(
            f"remove_labels {preview(unknown)} are not labels of {export} "
            f"({preview(memory.label_names)})."
        )
    memory = memory.without(remove)
    new = None
    if train_data is not None:  # new labels, or more examples of the export's own
        new = multilabel_data(train_data, where="train_data", minimum=1)
    if new is None and not remove:
        raise DataError("Nothing to grow: give train_data (new examples) or remove_labels.")
    added = [n for n in (new.names if new else []) if n not in memory.label_names]
    names = memory.label_names + added
    if len(names) < 2:
        raise DataError(f"{export} would keep {len(names)} label(s); a classifier needs >= 2.")
    model = AutoModelForSequenceClassification.from_pretrained(
        export, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(export, trust_remote_code=trust_remote_code)
    previous = AdaptationRecord.of(model)
    recorded = previous.multi_label
    if recorded.get("normalized"):
        without_normalized_layer(model)
    run = FewShotModel(
        MAML(model.eval(), plain_checkpoint_config(model)),
        tokenizer,
        max_length=recorded.get("max_length"),
    )
    args = MultiLabelArguments(**{k: recorded[k] for k in RECORDED if k in recorded})
    old = [[names[j] for j in row.nonzero().flatten().tolist()] for row in memory.targets]
    texts = [""] * len(old) + (new.texts if new else [])
    labels = old + (new.labels if new else [])
    data = MultiLabelData(texts, labels, names)
    classifier = build_classifier(run, data, args, known=memory.features, previous=previous)
    record = AdaptationRecord.of(classifier)
    record.grown_from = Path(export).name
    record.added_labels, record.removed_labels = added, remove
    record.more_examples = [n for n in (new.names if new else []) if n in memory.label_names]
    record.attach(classifier)
    return classifier
