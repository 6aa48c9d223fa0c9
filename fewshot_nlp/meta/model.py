"""`FewShotModel`: a meta-trained run as one object: load, save, adapt, classify.

Shaped like peft's ``PeftModel``: ``from_pretrained(folder)`` / ``save_pretrained(folder)``.
``adapt``, the trainer's evaluation, ``evaluate`` and the CLI all go through it, so a run is
loaded, adapted and scored one way everywhere.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from ..data.collate import EpisodeCollator
from ..data.labels import label_name_text
from ..data.sources import training_source
from ..errors import ConfigError, DataError, TrainingError
from ..model_card import AdaptationRecord
from ..modeling.head import NORMALIZED_HEAD_INITS, set_head
from ..modeling.lora import is_peft
from ..modeling.normalized_pooling import normalize_pooled_features
from ..modeling.pooling import is_mean_pooling
from ..modeling.rejection import add_rejection_output
from .class_memory import class_memory_for
from .config import MAMLConfig, plain_checkpoint_config
from .inner_loop import StartFeatures
from .maml import HEAD_BIAS, HEAD_WEIGHT, MAML
from .rejection import RejectionFit, check_rejection_options, fit_on_support, rejection_examples
from .saving import (
    BASE_MODEL_DIR,
    load_inner_lrs,
    load_meta_model,
    save_meta_model,
)

DEFAULT_SUPPORT_BATCH = 64
DEFAULT_MAX_LENGTH = 128
QUERY_BATCH = 128
MIN_MAX_LENGTH = 3


class FewShotModel:
    """A sequence classifier with its meta-learned adaptation rule and tokenizer.

    ``from_pretrained`` takes a meta-trained folder (its recorded adaptation is replayed) or
    any sequence-classification checkpoint (head-only logistic regression, no inner steps).
    The meta-model itself is never changed: ``adapt`` returns a new classifier.
    """

    def __init__(
        self,
        maml: MAML,
        tokenizer=None,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        info: dict | None = None,
        cache_features: bool = False,
    ) -> None:
        self.maml = maml
        self.tokenizer = tokenizer
        self.collator = EpisodeCollator(tokenizer, max_length=max_length)
        self.info = dict(info or {})
        # Frozen features by text (only for a model that no longer trains): the same held-out
        # texts recur across evaluation episodes.
        self._cache: dict | None = {} if cache_features else None

    # ---------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        max_length: int | None = None,
        cache_features: bool = False,
        trust_remote_code: bool = False,
        torch_dtype=None,
        **config_changes,
    ) -> FewShotModel:
        """Load a run; keyword arguments named like ``MAMLConfig`` fields override its
        recorded adaptation (as ``from_pretrained(path, num_labels=...)`` does a config)."""
        known = {f.name for f in fields(MAMLConfig)}
        unknown = sorted(set(config_changes) - known)
        if unknown:
            raise ConfigError(
                f"FewShotModel.from_pretrained got unknown settings {unknown}; the adaptation "
                f"settings are the MAMLConfig fields: {sorted(known)}."
            )
        model, tokenizer, config, info = load_meta_model(
            path, trust_remote_code=trust_remote_code, torch_dtype=torch_dtype
        )
        config = config or plain_checkpoint_config(model)
        changes = {k: v for k, v in config_changes.items() if v is not None}
        changes["support_batch_size"] = (
            changes.get("support_batch_size") or config.support_batch_size or DEFAULT_SUPPORT_BATCH
        )
        maml = MAML(model.eval(), replace(config, **changes))
        load_inner_lrs(maml, path)
        return cls(
            maml,
            tokenizer,
            max_length=max_length or info.get("max_length") or DEFAULT_MAX_LENGTH,
            info=info,
            cache_features=cache_features,
        )

    def save_pretrained(
        self, output_dir: str | os.PathLike, *, info: dict | None = None, merge_lora: bool = False
    ) -> Path:
        """The run as a Hub-format folder plus ``fewshot_nlp.json`` (how to adapt it) and its
        card. Without ``info``, what it was loaded with (its meta-training) is kept."""
        if info is None:
            keep = ("format_version", "maml", "head_name", "lora", "path")
            info = {k: v for k, v in self.info.items() if k not in keep}
        return save_meta_model(
            self.maml, output_dir, tokenizer=self.tokenizer, info=info, merge_lora=merge_lora
        )

    def with_config(self, **changes) -> FewShotModel:
        """The same weights under other adaptation settings (nothing is copied)."""
        maml = MAML(self.model, replace(self.config, **changes))
        if maml.log_inner_lrs is not None and self.maml.log_inner_lrs is not None:
            maml.log_inner_lrs.load_state_dict(self.maml.log_inner_lrs.state_dict())
        return self._view(maml)

    def _view(self, maml: MAML, *, max_length: int | None = None, info=None) -> FewShotModel:
        """A new object over ``maml`` with this one's tokenizer and settings; the feature
        cache is shared only while the encoder and the token length are the same."""
        length = max_length or self.collator.max_length
        view = FewShotModel(
            maml,
            self.tokenizer,
            max_length=length,
            info=self.info if info is None else info,
            cache_features=self._cache is not None,
        )
        same_reading = maml.model is self.model and length == self.collator.max_length
        if same_reading and self._cache is not None:
            view._cache = self._cache
        return view

    def without_meta_training(self) -> FewShotModel:
        """This run's own adaptation on the encoder it started from (its step 0): what
        meta-training added is the difference, the meta-value. A checkpoint that was never
        meta-trained is its own step 0."""
        if not self.meta_trained:
            return self
        origin = self.base_encoder
        kept = Path(self.path or "") / BASE_MODEL_DIR  # a LoRA run's unnamed starting encoder
        if not (origin and Path(origin).is_dir()) and self.path and kept.is_dir():
            origin = str(kept)
        if not origin or not Path(origin).is_dir():
            raise ConfigError(
                f"{self.path} records no local folder of the encoder it started from "
                f"(base_encoder: {origin!r}), so its adaptation cannot be run without "
                "meta-training (method maml-base). Leave maml-base out of the methods, or "
                "meta-train from a saved checkpoint so the run can find it."
            )
        from ..modeling.lora import apply_lora
        from ..modeling.pretrained import load_classifier

        pooling = "mean" if self.maml.mean_pooling else "model"
        model, tokenizer = load_classifier(origin, "eager", pooling=pooling)
        if hasattr(self.model, "peft_config"):  # fresh adapters (B = 0): the base's outputs
            model = apply_lora(model, copy.deepcopy(self.model.peft_config["default"]))
        config = replace(self.config, learn_inner_lr="none")  # learned rates are meta-training
        return FewShotModel(
            MAML(model.eval(), config),
            tokenizer,
            max_length=self.collator.max_length,
            info={"path": origin},
            cache_features=self._cache is not None,
        )

    def interpolated(self, weight: float) -> FewShotModel:
        """The run moved back toward the encoder it started from: ``start + weight * (run -
        start)``, tensor by tensor (weight-space interpolation, as in WiSE-FT). 1 is the run,
        0 its step 0; in between keeps part of what meta-training taught while moving less
        far from what it did not train on. LoRA: the adapters' update is scaled."""
        if not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
            raise ConfigError(f"weight_interpolation must be in [0, 1], got {weight!r}.")
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            if is_peft(model):  # LoRA's update is B @ A, and B starts at 0
                for name, param in model.named_parameters():
                    if "lora_B" in name:
                        param.mul_(weight)
            else:
                start = dict(self.without_meta_training().model.named_parameters())
                for name, param in model.named_parameters():
                    base = start.get(name)  # the head is the episode's, never the start's
                    if name in self.maml.head_params or base is None:
                        continue
                    if base.shape == param.shape:
                        param.copy_(base + weight * (param - base))
        maml = MAML(model, self.config)
        if self.maml.log_inner_lrs is not None:
            maml.log_inner_lrs.load_state_dict(self.maml.log_inner_lrs.state_dict())
        return self._view(maml, info={**self.info, "weight_interpolation": weight})

    # ---------------------------------------------------------------- what the run is
    @property
    def model(self):
        return self.maml.model

    @property
    def config(self) -> MAMLConfig:
        return self.maml.config

    @property
    def path(self) -> str | None:
        return self.info.get("path")

    @property
    def meta_trained(self) -> bool:
        return "maml" in self.info

    @property
    def base_encoder(self) -> str | None:
        return self.info.get("base_encoder") or self.info.get("base_model")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---------------------------------------------------------------- adapting and scoring
    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict:
        inputs = self.collator.encode(list(texts), None if pairs is None else list(pairs))
        return {k: v.to(self.device) for k, v in inputs.items()}

    def adapt_weights(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        n_way: int,
        *,
        pairs: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        source: str = "support",
    ) -> tuple[dict[str, torch.Tensor], dict]:
        """The adapted fast weights (standard head) for a support set, and what happened."""
        names = None
        if label_names is not None and pairs is None:
            names = {
                k: v.to(self.device)
                for k, v in self.collator.encode_label_names(label_names).items()
            }
        return self.maml.adapt_fast_weights(
            self.encode(texts, pairs),
            torch.as_tensor(labels, dtype=torch.long, device=self.device),
            n_way,
            names=names,
            source=source,
            meta_grad=False,
            start_features=self._cached_start_features(
                texts, pairs, None if names is None else label_names
            ),
        )

    def _cached_start_features(self, texts, pairs, label_names) -> StartFeatures | None:
        """The support's and the names' head features from this model's cache (an
        evaluation's: the same texts recur across episodes), None where it keeps none."""
        if self._cache is None:
            return None
        support = self.features(texts, pairs).to(self.device) if len(texts) else None
        names = None
        if label_names is not None:
            names = self.features([label_name_text(n) for n in label_names]).to(self.device)
        return StartFeatures(support, names)

    @torch.no_grad()
    def logits(
        self, fast: dict[str, torch.Tensor], texts: Sequence[str], pairs=None
    ) -> torch.Tensor:
        """Logits of texts at ``fast`` weights, in batches. Weights that leave the encoder as
        it is (a head only) read its frozen features (cached, if this model keeps a cache)."""
        if set(fast) <= {HEAD_WEIGHT, HEAD_BIAS}:
            return self.maml.logits(self.features(texts, pairs).to(self.device), fast)
        out = []
        for i in range(0, len(texts), QUERY_BATCH):
            chunk = None if pairs is None else pairs[i : i + QUERY_BATCH]
            inputs = self.encode(texts[i : i + QUERY_BATCH], chunk)
            out.append(self.maml.logits(self.maml.features(fast, inputs), fast))
        return torch.cat(out)

    def episode_logits(
        self,
        support_texts: Sequence[str],
        support_labels: Sequence[int],
        n_way: int,
        query_texts: Sequence[str],
        *,
        support_pairs=None,
        query_pairs=None,
        label_names: Sequence[str] | None = None,
        source: str = "episode",
    ) -> torch.Tensor:
        """The one evaluator: adapt on the support set, score the query texts. The trainer's
        evaluation and ``evaluate``'s ``maml`` method both call it."""
        fast, _ = self.adapt_weights(
            support_texts,
            support_labels,
            n_way,
            pairs=support_pairs,
            label_names=label_names,
            source=source,
        )
        return self.logits(fast, list(query_texts), query_pairs)

    @torch.no_grad()
    def features(self, texts, pairs=None, pooling: str = "head") -> torch.Tensor:
        """Features of the un-adapted encoder ('head': the head's input; 'mean': the mean of
        the last hidden states), from the cache where this model keeps one."""
        texts = list(texts)
        pairs = None if pairs is None else list(pairs)
        keys = [(pooling, t, None if pairs is None else pairs[i]) for i, t in enumerate(texts)]
        cache = self._cache if self._cache is not None else {}
        todo = list(dict.fromkeys(k for k in keys if k not in cache))
        for i in range(0, len(todo), QUERY_BATCH):
            chunk = todo[i : i + QUERY_BATCH]
            inputs = self.encode(
                [k[1] for k in chunk], None if pairs is None else [k[2] for k in chunk]
            )
            if pooling == "head":
                feats = self.maml.features({}, inputs)
            else:
                feats = self._mean_pooled(inputs)
            cache.update(zip(chunk, feats.cpu()))
        return torch.stack([cache[k] for k in keys])

    def _mean_pooled(self, inputs) -> torch.Tensor:
        model = self.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        hidden = base.base_model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def predict(self, *args, **kwargs) -> np.ndarray:
        """Predicted class ids of the query texts (arguments as ``episode_logits``)."""
        return self.episode_logits(*args, **kwargs).argmax(-1).cpu().numpy()

    # ---------------------------------------------------------------- a classifier
    def adapt(
        self,
        train_data=None,
        *,
        labels: Sequence[str] | None = None,
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = None,
        inner_steps: int | None = None,
        inner_learning_rate: float | None = None,
        max_length: int | None = None,
        support_batch_size: int | None = None,
        merge_lora: bool = True,
        adapt_head_init: str | None = None,
        adapt_step_candidates: list[int] | None = None,
        label_names: str | None = None,
        unknown_label: str | None = None,
        unknown_data=None,
        max_in_scope_loss: float | None = None,
    ):
        """Adapt to ``train_data``'s classes; returns a ``PreTrainedModel`` with their names.

        ``train_data``: a Dataset, file path(s) or (text, label) pairs; ``labels``: the classes
        in order, those without examples classified by their names alone (0-shot).
        ``adapt_head_init``, ``adapt_step_candidates`` (``[0, 1, 3]``: inner steps by k-fold
        on the support; ``inner_steps`` fixes them), ``inner_learning_rate``,
        ``support_batch_size`` and ``label_names`` ('auto', 'always', 'never') override the
        recorded adaptation; they are spelled as in ``MAMLConfig``. ``unknown_label``: one
        more label, predicted when no class fits (threshold and temperature by k-fold on the
        support, rejecting at most ``max_in_scope_loss`` points of held-out accuracy,
        default 3; or separating ``unknown_data``, texts of no class, from the held-out
        support).
        """
        check_adapt_options(
            inner_steps=inner_steps,
            inner_learning_rate=inner_learning_rate,
            max_length=max_length,
            support_batch_size=support_batch_size,
        )
        check_rejection_options(unknown_label, max_in_scope_loss, unknown_data=unknown_data)
        source, names = training_source(
            train_data,
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
            labels=labels,
        )
        unknown = rejection_examples(
            unknown_label,
            max_in_scope_loss,
            unknown_data,
            names,
            source,
            text_column,
            label_column,
        )
        if self.tokenizer is None:
            raise DataError("adapt needs a tokenizer: FewShotModel(maml, tokenizer).")
        nameless, label_names = self._nameless_classes(names, source, label_names)
        _warn_unreadable_names(self.tokenizer, names)
        changes = _adaptation_changes(
            support_batch_size=support_batch_size,
            inner_steps=inner_steps,
            adapt_step_candidates=adapt_step_candidates,
            adapt_head_init=adapt_head_init,
            label_names=label_names,
            inner_learning_rate=inner_learning_rate,
        )
        runner = self._runner(changes, max_length)
        runner.config.check_adaptation()
        head = runner.config.adaptation_head_init
        if unknown_label and is_mean_pooling(self.model) and head not in NORMALIZED_HEAD_INITS:
            raise ConfigError(
                f"unknown_label on a mean-pooling model needs a head fitted on normalised "
                f"features ({', '.join(NORMALIZED_HEAD_INITS)}), so that its threshold reads "
                f"the same whatever the padding; adapt_head_init {head!r} is not one. Choose "
                "one of those heads, or drop unknown_label."
            )
        reject = (unknown_label, max_in_scope_loss, unknown) if unknown_label else None
        return runner._fit_classifier(source, names, nameless, merge_lora, reject)

    def _fit_classifier(self, source, names, nameless, merge_lora: bool, reject):
        """Adapt on ``source`` (or the names alone), then package the classifier: rejection
        label (``reject``: label, loss budget, out-of-scope texts), record, class memory."""
        texts = source.texts if source is not None else []
        pairs = source.text_pairs if source is not None else None
        if texts:
            _warn_truncation(self.collator, texts, pairs)
        ids = {name: i for i, name in enumerate(names)}
        label_ids = [ids[y] for y in (source.labels if source is not None else [])]
        fast, metrics = self.adapt_weights(
            texts,
            label_ids,
            len(names),
            pairs=pairs,
            label_names=names,
            source="train_data",
        )
        if metrics.get("cv_fallback"):
            warnings.warn(f"adapt: {metrics['cv_fallback']}.", stacklevel=3)
        note = self._names_note(nameless)
        if note:
            warnings.warn(f"adapt: {note}", stacklevel=3)
        classifier = self.classifier(fast, names, merge_lora=merge_lora)
        record = self._adaptation_record(
            metrics, classes=len(names), examples=len(texts), nameless=nameless, note=note
        )
        rejection = None
        if reject is not None:
            rejection = self._reject(classifier, metrics, texts, label_ids, names, *reject)
            record.rejection = rejection.to_dict()
        record.attach(classifier)
        if not is_peft(classifier):  # an unmerged adapter's export cannot grow
            # a head-only adaptation without a rejection layer reads as this model does
            same_encoder = set(fast) <= {HEAD_WEIGHT, HEAD_BIAS} and rejection is None
            reader = self
            if not same_encoder:
                maml = MAML(classifier, plain_checkpoint_config(classifier))
                reader = FewShotModel(maml, self.tokenizer, max_length=self.collator.max_length)
            classifier.fewshot_nlp_classes = class_memory_for(
                reader,
                self.config,
                classifier,
                texts,
                pairs,
                label_ids,
                names,
                metrics,
                rejection,
                unknown=reject[2] if reject is not None else None,
            )
        return classifier

    def _runner(self, changes: dict, max_length: int | None) -> FewShotModel:
        """This model under one call's settings: a new object, never ``self`` changed."""
        runner = self.with_config(**changes) if changes else self
        if max_length is not None and max_length != runner.collator.max_length:
            runner = runner._view(runner.maml, max_length=max_length)
        return runner

    def _nameless_classes(self, names, source, label_names):
        """The classes without examples (classified by their names alone) and the
        ``label_names`` setting that can classify them."""
        have = set(source.label_index) if source is not None else set()
        nameless = [n for n in names if n not in have]
        if nameless and label_names == "never":
            raise ConfigError(
                f"{len(nameless)} class(es) have no examples ({', '.join(nameless[:3])}), so "
                "their names are all there is: label_names='never' cannot classify them. Give "
                "them examples, or use label_names 'always'."
            )
        if nameless and self.config.label_names == "never":
            label_names = "auto"  # the run never used names, but these classes have nothing else
        return nameless, label_names

    def _reject(
        self, classifier, metrics, texts, label_ids, names, label, loss, unknown
    ) -> RejectionFit:
        """Give ``classifier`` its rejection label. A mean-pooling export with a normalised
        head is first made to read the normalised embedding (``normalized_pooling``), so the
        threshold reads what the head was fitted on, not the feature's norm."""
        head = self.maml.episode_head(self.config.adaptation_head_init)
        normalized = is_mean_pooling(classifier) and head.normalized and not is_peft(classifier)
        if normalized:
            weight = classifier.get_submodule(self.maml.head_name).weight.detach()
            features = self.features(texts or [label_name_text(n) for n in names])
            normalize_pooled_features(classifier, weight * metrics["feature_norm"], features)
        fit = fit_on_support(
            self,
            classifier,
            metrics,
            texts,
            label_ids,
            names,
            label=label,
            max_in_scope_loss=loss,
            unknown=unknown,
            normalized=normalized,
        )
        probe = self.encode((texts or [label_name_text(n) for n in names])[:16])
        probe.pop("token_type_ids", None)
        add_rejection_output(classifier, fit.label, fit.threshold, fit.temperature, probe)
        return fit

    def _names_note(self, nameless: list[str]) -> str | None:
        """What a 0-shot class is scored by, when the names were never meta-trained."""
        trained_names = self.meta_trained and self.config.label_names != "never"
        if not nameless or trained_names:
            return None
        return (
            f"{len(nameless)} class(es) have no examples and this model's label names were "
            "never meta-trained: they are classified by the base encoder's similarity to "
            "their names (label-name cosine)."
        )

    def _adaptation_record(self, metrics: dict, **what) -> AdaptationRecord:
        """What the adaptation did, for the model card."""
        config, info = self.config, self.info
        return AdaptationRecord(
            classes=what["classes"],
            examples=what["examples"],
            zero_shot_classes=what["nameless"],
            zero_shot_note=what["note"],
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
            meta_trained=self.meta_trained,
            meta_training=info.get("meta_training"),
            base_model=info.get("base_model"),
            base_encoder=self.base_encoder or self.path,
        )

    def classifier(
        self, fast: dict[str, torch.Tensor], label_names: Sequence[str], *, merge_lora=True
    ):
        """A copy of the model holding the adapted weights and a head named by the labels."""
        bad = [name for name, value in fast.items() if not torch.isfinite(value).all()]
        if bad:
            raise TrainingError(
                f"Adaptation produced non-finite weights ({', '.join(bad[:3])}): nothing was "
                "exported. Lower the inner learning rate or the steps, or check the examples."
            )
        classifier = copy.deepcopy(self.model)
        params = dict(classifier.named_parameters())
        with torch.no_grad():
            for name in self.maml.fast_names:
                if name in fast:  # after 0 steps only the head is adapted
                    params[name].copy_(fast[name])
        if hasattr(classifier, "peft_config") and merge_lora:
            classifier = classifier.merge_and_unload()
        set_head(
            classifier, self.maml.head_name, fast[HEAD_WEIGHT], fast[HEAD_BIAS], list(label_names)
        )
        return classifier.eval()


def _adaptation_changes(**given) -> dict:
    """``adapt``'s settings (``MAMLConfig``'s names) as changes of the recorded config. A
    fixed ``inner_steps`` ends the step choice by cross-validation, and a fixed
    ``inner_learning_rate`` any learned per-tensor rates."""
    changes = {k: v for k, v in given.items() if v is not None}
    if "adapt_step_candidates" in changes:
        changes["adapt_step_candidates"] = list(changes["adapt_step_candidates"])
    elif "inner_steps" in changes:
        changes["adapt_step_candidates"] = None
    if "inner_learning_rate" in changes:
        changes["learn_inner_lr"] = "none"
    return changes


def check_adapt_options(
    *,
    inner_steps: int | None = None,
    inner_learning_rate: float | None = None,
    max_length: int | None = None,
    support_batch_size: int | None = None,
) -> None:
    """Adaptation settings checked before anything is loaded (a NaN learning rate would
    otherwise export a head of NaNs)."""
    if inner_steps is not None and inner_steps < 0:
        raise ConfigError(f"inner_steps must be >= 0, got {inner_steps}.")
    rate = inner_learning_rate
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"inner_learning_rate must be a finite number > 0, got {rate}.")
    if max_length is not None and max_length < MIN_MAX_LENGTH:
        raise ConfigError(
            f"max_length must be >= {MIN_MAX_LENGTH} (the special tokens plus at least one "
            f"word), got {max_length}."
        )
    if support_batch_size is not None and support_batch_size < 1:
        raise ConfigError(f"support_batch_size must be >= 1, got {support_batch_size}.")


def _warn_truncation(collator: EpisodeCollator, texts, pairs) -> None:
    lengths = collator.tokenizer(texts, pairs, truncation=False)["input_ids"]
    over = sum(len(ids) > collator.max_length for ids in lengths)
    if over:
        warnings.warn(
            f"{over} of {len(texts)} texts are longer than max_length={collator.max_length} "
            "tokens and were truncated.",
            stacklevel=3,
        )


def _warn_unreadable_names(tokenizer, names: Sequence[str]) -> None:
    """Label names the tokenizer reads mostly as its unknown token say nothing to the
    encoder: where names take part (0-shot classes, label_names), say so."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None:
        return
    unreadable = []
    for name in names:
        ids = tokenizer(label_name_text(name), add_special_tokens=False)["input_ids"]
        if ids and sum(i == unknown for i in ids) / len(ids) > 0.5:
            unreadable.append(name)
    if unreadable:
        shown = ", ".join(repr(n) for n in unreadable[:5])
        warnings.warn(
            f"adapt: the tokenizer reads the label name(s) {shown} mostly as its unknown "
            f"token ({tokenizer.unk_token}): these names tell the encoder nothing. Give "
            "those classes examples, or name them in words of the model's language.",
            stacklevel=4,
        )
