"""What made a classifier, as a record that travels in its ``config.json``
(``fewshot_nlp_adaptation``): its adaptation or growth, the run it came from, its rejection
label. The model card is written from it; no local path is ever recorded."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_KEY = "fewshot_nlp_adaptation"  # in config.json, so the record survives export/load


@dataclass
class AdaptationRecord:
    """What made a classifier: its adaptation (or its growth from an export), the meta-model
    it came from, and its rejection label. Saved in ``config.json`` (``fewshot_nlp_adaptation``)."""

    classes: int
    examples: int
    adapt_head_init: str
    label_names_used: bool = False
    inner_steps: int | None = None
    inner_learning_rate: float | None = None
    adapt_scope: str | None = None
    adapt_step_candidates: list[int] | None = None
    cv_accuracy: dict[int, float] | None = None
    cv_fallback: str | None = None
    label_name_accuracy: float | None = None
    support_loss_before: float | None = None
    zero_shot_classes: list[str] = field(default_factory=list)
    zero_shot_note: str | None = None
    meta_trained: bool = False
    meta_training: dict | None = None
    base_model: str | None = None
    base_encoder: str | None = None
    rejection: dict | None = None
    multi_label: dict | None = None
    unlabeled: dict | None = None  # the unlabeled pool an adaptation read, and what it did
    grown_from: str | None = None
    added_labels: list[str] = field(default_factory=list)
    removed_labels: list[str] = field(default_factory=list)
    more_examples: list[str] = field(default_factory=list)

    def attach(self, model) -> None:
        """Store the record in ``model.config`` (written with it, ignored by transformers).
        Local paths are recorded as a Hub id or a folder name: the config is published."""
        setattr(model.config, CONFIG_KEY, public_paths(dataclasses.asdict(self)))

    @classmethod
    def of(cls, model) -> AdaptationRecord | None:
        """The record a classifier carries (also after export and reload), or None."""
        values = getattr(getattr(model, "config", None), CONFIG_KEY, None)
        if not values:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if values.get("cv_accuracy"):  # JSON keys are strings
            values["cv_accuracy"] = {int(k): v for k, v in values["cv_accuracy"].items()}
        return cls(**values)


def public_paths(value):
    """``value`` with every local path in it (as a string) replaced by what may be
    published: the Hub id of the packaged MiniLM, else the folder's own name."""
    from ..hub import hub_model_id

    if isinstance(value, dict):
        return {k: public_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_paths(v) for v in value]
    if isinstance(value, str) and _is_local_path(value):
        return hub_model_id(value) or Path(value).name
    return value


def _is_local_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    path = Path(text).expanduser()
    return (
        path.is_absolute() or text.startswith(("./", "../", "~")) or ("/" in text and path.exists())
    )
