"""Model cards as data: what an adaptation (or growth) did, as a record that travels in the
classifier's config, and the card data rendered through one template (as setfit does)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = Path(__file__).with_name("model_card_template.md")
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
    from .hub import hub_model_id

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


class FewShotModelCardData(ModelCardData):
    """The card's YAML metadata plus what its body says. ``to_yaml`` writes the metadata
    only; the template reads the rest (``kind``: "classifier" or "meta-model")."""

    BODY = ("kind", "record", "labels", "memory", "keep_adapter", "evaluation", "meta")

    def __init__(
        self,
        *,
        kind: str,
        record: AdaptationRecord | None = None,
        labels: list[str] | None = None,
        memory: dict | None = None,
        keep_adapter: bool = False,
        evaluation: dict | None = None,
        meta: dict | None = None,
        **metadata,
    ) -> None:
        super().__init__(**metadata)
        self.kind = kind
        self.record = dataclasses.asdict(record) if record is not None else None
        self.labels = labels or []
        self.memory = memory
        self.keep_adapter = keep_adapter
        self.evaluation = evaluation
        self.meta = meta

    def to_yaml(self, line_break=None, original_order=None) -> str:
        header = {k: v for k, v in self.__dict__.items() if k not in self.BODY}
        return ModelCardData(**header).to_yaml(line_break, original_order)

    def render(self) -> str:
        return str(ModelCard.from_template(self, template_path=str(TEMPLATE)))


def model_card(
    model,
    *,
    eval_results: dict | None = None,
    datasets: list[str] | None = None,
    keep_adapter: bool = False,
    class_memory=None,
) -> str:
    """README.md of an adapted classifier, from the record it carries."""
    from .hub import hub_model_id

    record = AdaptationRecord.of(model)
    meta_training = (record.meta_training if record else None) or {}
    base = hub_model_id(record and (record.base_encoder or record.base_model))
    sources = [s["name"] for s in meta_training.get("sources", [])]
    scores = {k: v for k, v in (eval_results or {}).items() if k != "dataset"}
    results = [
        EvalResult(
            task_type="text-classification",
            dataset_type="text-classification",
            dataset_name=str((eval_results or {}).get("dataset", "held-out")),
            metric_type=key,
            metric_value=float(value),
        )
        for key, value in scores.items()
    ]
    memory = None
    if class_memory is not None:
        names = int(class_memory.is_name.sum())
        memory = dict(
            examples=len(class_memory.labels) - names,
            names=names,
            width=class_memory.features.shape[-1],
        )
    data = FewShotModelCardData(
        kind="classifier",
        record=record,
        labels=[model.config.id2label[i] for i in range(model.config.num_labels)],
        memory=memory,
        keep_adapter=keep_adapter,
        evaluation=eval_results or None,
        meta=dict(sources=sources),
        library_name="peft" if keep_adapter else "transformers",
        pipeline_tag="text-classification",
        tags=["fewshot-nlp", "maml", "few-shot", "text-classification"]
        + (["lora", "peft"] if keep_adapter else []),
        base_model=base,
        datasets=list(datasets or sources) or None,
        model_name="fewshot-nlp adapted classifier" if results else None,
        eval_results=results or None,
    )
    return data.render()


def meta_model_card(info: dict) -> str:
    """README.md of a meta-trained run, from what the run recorded (``fewshot_nlp.json``)."""
    from .hub import hub_model_id

    training = info.get("meta_training") or {}
    sources = training.get("sources", [])
    validation = info.get("validation")
    if validation:
        validation = dict(validation, keys=[k for k in validation["curve"][0] if k != "step"])
    maml = info.get("maml") or {}
    data = FewShotModelCardData(
        kind="meta-model",
        meta=dict(
            training=training,
            maml=maml,
            adapt_head=maml.get("adapt_head_init") or maml.get("head_init"),
            validation=validation,
            interpolation=info.get("weight_interpolation"),
        ),
        library_name="transformers",
        tags=["fewshot-nlp", "maml", "meta-learning", "few-shot"],
        base_model=hub_model_id(info.get("base_encoder")),
        datasets=[s["name"] for s in sources] or None,
    )
    return data.render()
