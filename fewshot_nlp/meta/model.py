"""`FewShotModel`: a meta-trained run as one object: load, save, interpolate, features,
adapted weights and episode scores.

Shaped like peft's ``PeftModel``: ``from_pretrained(folder)`` / ``save_pretrained(folder)``.
The trainer's evaluation, ``evaluate`` and ``classifier.adapt`` all go through it, so a run
is loaded, adapted and scored one way everywhere. Turning adapted weights into a classifier
(labels, rejection, class memory, record) is the ``classifier`` wing's job, not this one's.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from ..data.collate import EpisodeCollator
from ..data.labels import label_name_text
from ..errors import ConfigError
from ..modeling.lora import is_peft
from ..modeling.pooling import mean_pooled
from .config import MAMLConfig, plain_checkpoint_config
from .inner_loop import StartFeatures
from .maml import HEAD_BIAS, HEAD_WEIGHT, MAML
from .saving import (
    BASE_MODEL_DIR,
    load_inner_lrs,
    load_meta_model,
    save_meta_model,
)

DEFAULT_SUPPORT_BATCH = 64
DEFAULT_MAX_LENGTH = 128
QUERY_BATCH = 128


class FewShotModel:
    """A sequence classifier with its meta-learned adaptation rule and tokenizer.

    ``from_pretrained`` takes a meta-trained folder (its recorded adaptation is replayed) or
    any sequence-classification checkpoint (head-only logistic regression, no inner steps).
    Nothing here changes the run: settings for one call make a new object."""

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
        tokenizer=None,
        **config_changes,
    ) -> FewShotModel:
        """Load a run; keyword arguments named like ``MAMLConfig`` fields override its
        recorded adaptation (as ``from_pretrained(path, num_labels=...)`` does a config).
        ``tokenizer``: use this one instead of the folder's."""
        known = {f.name for f in fields(MAMLConfig)}
        unknown = sorted(set(config_changes) - known)
        if unknown:
            raise ConfigError(
                f"FewShotModel.from_pretrained got unknown settings {unknown}; the adaptation "
                f"settings are the MAMLConfig fields: {sorted(known)}."
            )
        model, saved_tokenizer, config, info = load_meta_model(
            path, trust_remote_code=trust_remote_code, torch_dtype=torch_dtype
        )
        config = config or plain_checkpoint_config(model)
        changes = {k: v for k, v in config_changes.items() if v is not None}
        changes["support_batch_size"] = (
            changes.get("support_batch_size") or config.support_batch_size or DEFAULT_SUPPORT_BATCH
        )
        maml = MAML(model.eval(), replace(config, **changes))
        if maml.log_inner_lrs is not None:  # learned inner rates, kept beside the weights
            load_inner_lrs(maml, path)
        return cls(
            maml,
            tokenizer if tokenizer is not None else saved_tokenizer,
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
        return self._view(self._maml_over(self.model, replace(self.config, **changes)))

    def _maml_over(self, model, config: MAMLConfig) -> MAML:
        """A MAML over ``model`` that keeps this run's learned inner rates."""
        maml = MAML(model, config)
        if maml.log_inner_lrs is not None and self.maml.log_inner_lrs is not None:
            maml.log_inner_lrs.load_state_dict(self.maml.log_inner_lrs.state_dict())
        return maml

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

    def with_max_length(self, max_length: int) -> FewShotModel:
        """The same run reading texts up to ``max_length`` tokens (a new object)."""
        return self._view(self.maml, max_length=max_length)

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
        info = {**self.info, "weight_interpolation": weight}
        return self._view(self._maml_over(model, self.config), info=info)

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
                base = self.model.get_base_model() if is_peft(self.model) else self.model
                feats = mean_pooled(base.base_model, inputs)
            cache.update(zip(chunk, feats.cpu()))
        return torch.stack([cache[k] for k in keys])

    def predict(self, *args, **kwargs) -> np.ndarray:
        """Predicted class ids of the query texts (arguments as ``episode_logits``)."""
        return self.episode_logits(*args, **kwargs).argmax(-1).cpu().numpy()
