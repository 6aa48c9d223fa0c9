"""Model cards as data (as setfit does): the card's data filled from what happened (a run's
``fewshot_nlp.json``, a classifier's adaptation record) and rendered through one template."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = Path(__file__).with_name("model_card_template.md")


class FewShotModelCardData(ModelCardData):
    """The card's YAML metadata plus what its body says. ``to_yaml`` writes the metadata
    only; the template reads the rest (``kind``: "classifier" or "meta-model")."""

    BODY = ("kind", "record", "labels", "memory", "keep_adapter", "evaluation", "meta")

    def __init__(
        self,
        *,
        kind: str,
        record=None,
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
    record=None,
    eval_results: dict | None = None,
    datasets: list[str] | None = None,
    keep_adapter: bool = False,
    class_memory=None,
) -> str:
    """README.md of an adapted classifier, from the record it carries
    (``classifier.AdaptationRecord``; None for a classifier fewshot-nlp did not adapt)."""
    from .hub import hub_model_id

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
