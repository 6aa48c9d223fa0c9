"""MAML on any sequence classifier with fast weights as a dict (no model copies).

The encoder runs through ``torch.func.functional_call`` with the adapted tensors swapped
in; the head is applied by us to the features its input hook captures, so it can take any
episode's number of classes. Second order keeps the inner gradients' graph
(``create_graph=True``); first order does not. The inner loop itself is in ``inner_loop``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..data.collate import EpisodeBatch
from ..errors import ConfigError, ModelError
from ..modeling.head import EpisodeHead, find_head, head_module, head_param_names, unwrap_peft
from ..modeling.pooling import is_mean_pooling
from ..modeling.scopes import adapted_param_names, layer_index
from ..modeling.second_order import double_backward_attention, enable_activation_checkpointing
from .config import MAMLConfig
from .cross_validation import choose_inner_steps
from .inner_loop import (
    HEAD_BIAS,
    HEAD_WEIGHT,
    DetachedSteps,
    DifferentiableSteps,
    StartFeatures,
    every_class_has_examples,
    prepare_episode,
)

__all__ = ["HEAD_BIAS", "HEAD_WEIGHT", "MAML", "EpisodeOutput", "enable_activation_checkpointing"]


class _FeaturesReady(Exception):
    """Raised by the head's input hook: the encoder's work is done."""


@dataclass
class EpisodeOutput:
    """What one episode gives: the query loss to differentiate, and numbers to log."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    fast_weights: dict[str, torch.Tensor] | None = None


class MAML(nn.Module):
    """A sequence classifier plus the meta-learned adaptation rule.

    ``maml(batch)`` adapts to the episode's support set and returns the query loss; its
    ``backward()`` is the meta-gradient for the model's trainable parameters (and the
    learned inner learning rates, if any).
    """

    def __init__(self, model: nn.Module, config: MAMLConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.config = config or MAMLConfig()
        self.head_name = find_head(model, self.config.head_name)
        # Not registered as a submodule: it already is one, inside self.model.
        self.__dict__["_head_module"] = head_module(model, self.head_name)
        self.head_params = head_param_names(model, self.head_name)
        self.mean_pooling = is_mean_pooling(unwrap_peft(model))
        self.fast_names = adapted_param_names(model, self.config.adapt_scope, self.head_params)
        learned = self.config.learn_inner_lr != "none"
        self.log_inner_lrs = self._make_inner_lrs() if learned else None
        if self.config.gradient_checkpointing:
            enable_activation_checkpointing(model)

    # ------------------------------------------------------------------ set-up
    def _lr_key(self, name: str) -> str:
        if self.config.learn_inner_lr == "layer":
            if name in (HEAD_WEIGHT, HEAD_BIAS):
                return "head"
            layer = layer_index(name)
            return f"layer_{layer}" if layer is not None else "other"
        return name.replace(".", "__")

    def _make_inner_lrs(self) -> nn.ParameterDict:
        start = math.log(self.config.inner_learning_rate)
        keys = dict.fromkeys(self._lr_key(n) for n in [*self.fast_names, HEAD_WEIGHT, HEAD_BIAS])
        return nn.ParameterDict({k: nn.Parameter(torch.tensor(start)) for k in keys})

    def inner_lr(self, name: str) -> torch.Tensor | float:
        if self.log_inner_lrs is None:
            return self.config.inner_learning_rate
        return self.log_inner_lrs[self._lr_key(name)].exp()

    def meta_parameters(self) -> list[nn.Parameter]:
        """What the outer loop updates: trainable model weights (not the per-episode head)."""
        params = [
            p
            for n, p in self.model.named_parameters()
            if p.requires_grad and n not in self.head_params
        ]
        if self.log_inner_lrs is not None:
            params += list(self.log_inner_lrs.parameters())
        return params

    # ------------------------------------------------------------------ features and heads
    def features(
        self,
        params: dict[str, torch.Tensor],
        inputs: dict[str, torch.Tensor],
        create_graph: bool = False,
    ) -> torch.Tensor:
        """The head's input features with ``params`` swapped into the model."""
        size = self.config.support_batch_size
        n = next(iter(inputs.values())).shape[0]
        if size and n > size:
            return torch.cat(
                [
                    self.features(
                        params, {k: v[i : i + size] for k, v in inputs.items()}, create_graph
                    )
                    for i in range(0, n, size)
                ]
            )
        captured: list[torch.Tensor] = []

        def grab(_module, args):
            captured.append(args[0])
            raise _FeaturesReady

        handle = self._head_module.register_forward_pre_hook(grab)
        try:
            with double_backward_attention(self.model, create_graph):
                encoder = {k: v for k, v in params.items() if k not in (HEAD_WEIGHT, HEAD_BIAS)}
                functional_call(self.model, encoder, args=(), kwargs=inputs, strict=False)
        except _FeaturesReady:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ModelError(f"The head {self.head_name!r} was never called in the forward pass.")
        feats = captured[0]
        if feats.dim() != 2:
            raise ModelError(
                f"The head {self.head_name!r} receives {feats.dim()}-D input; fewshot-nlp "
                "needs one feature vector per example (encoder-style classifiers)."
            )
        mask = inputs.get("attention_mask")
        if self.mean_pooling and mask is not None:
            # The head reads sum / padded length; the sentence embedding is sum / length.
            feats = feats * (mask.shape[1] / mask.sum(1, keepdim=True).clamp(min=1)).to(feats)
        return feats

    @staticmethod
    def logits(feats: torch.Tensor, fast: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of a standard head (what adaptation returns: a plain linear layer)."""
        return F.linear(feats, fast[HEAD_WEIGHT], fast[HEAD_BIAS])

    def episode_head(self, init: str | None = None) -> EpisodeHead:
        """The head rule of an episode: meta-training's ``head_init`` unless ``init`` says."""
        config = self.config
        return EpisodeHead(init or config.head_init, config.logit_scale, config.head_regularization)

    # ------------------------------------------------------------------ the inner loop
    def adapt_fast_weights(
        self,
        support: dict[str, torch.Tensor],
        labels: torch.Tensor,
        n_way: int,
        *,
        names: dict[str, torch.Tensor] | None = None,
        source: str = "episode",
        meta_grad: bool = True,
        inner_steps: int | None = None,
        start_features: StartFeatures | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Run the inner loop on a support set; return the fast weights and support metrics.

        With ``meta_grad`` the result stays connected to the meta-parameters (through the
        head init always; through the inner gradients too when second order). Without it,
        the head is returned as a standard linear head on raw features (what the export
        holds), and the number of steps may be chosen by cross-validation. ``names`` are the
        tokenized label names, one per class in label order: extra support examples when
        ``config.label_names`` says so, and the only ones of a class without examples (0-shot).
        ``start_features``: their features at the model's own weights, when already computed.
        """
        if n_way < 2:
            raise ConfigError(f"Episode from {source!r} has {n_way} class; MAML needs >= 2.")
        metrics: dict = {}
        if not every_class_has_examples(labels, n_way):
            if names is None or self.config.label_names == "never":
                raise ConfigError(
                    f"Some classes of the episode from {source!r} have no examples, and label "
                    "names are off (label_names='never', or text pairs): give every class an "
                    "example, or turn label names on."
                )
            if not meta_grad and not labels.numel():
                inner_steps = 0  # names only: nothing to adapt the encoder to
                metrics["zero_shot"] = True
        if not meta_grad and inner_steps is None and self.config.adapt_step_candidates:
            inner_steps = choose_inner_steps(self, support, labels, n_way, names, metrics)
        steps = self.config.inner_steps if inner_steps is None else inner_steps
        head_init = self.config.head_init if meta_grad else self.config.adaptation_head_init
        taken, more = self.inner_loop(
            support,
            labels,
            n_way,
            [steps],
            head_init,
            names,
            source=source,
            meta_grad=meta_grad,
            start_features=start_features,
        )
        if meta_grad:
            return taken[steps], more
        fast = taken[steps]
        if steps == 0:  # the encoder is the model's own: the head alone says everything, so
            # the queries read the frozen (cacheable) features instead of a per-episode forward
            fast = {n: w for n, w in fast.items() if n in (HEAD_WEIGHT, HEAD_BIAS)}
        return fast, {**more, **metrics, "inner_steps": steps}

    def inner_loop(
        self,
        support: dict[str, torch.Tensor],
        labels: torch.Tensor,
        n_way: int,
        snapshots: list[int],
        head_init: str,
        name_inputs: dict[str, torch.Tensor] | None = None,
        *,
        source: str = "episode",
        meta_grad: bool = True,
        strict: bool = True,
        start_features: StartFeatures | None = None,
    ) -> tuple[dict[int, dict[str, torch.Tensor]], dict]:
        """The one inner loop: fast weights after each step count in ``snapshots``.

        The episode is prepared once (``prepare_episode``), then stepped: with ``meta_grad`` by
        ``DifferentiableSteps`` (the weights stay differentiable in the meta-parameters),
        without by ``DetachedSteps`` (chunked, standard heads; not ``strict``: a non-finite
        loss ends it early).
        """
        head = self.episode_head(head_init)
        episode = prepare_episode(
            self,
            support,
            labels,
            n_way,
            head,
            name_inputs,
            meta_grad=meta_grad,
            start_features=start_features,
        )
        if meta_grad:
            return DifferentiableSteps(self)(episode, snapshots, source)
        return DetachedSteps(self)(episode, snapshots, source, strict)

    # ------------------------------------------------------------------ the outer loss
    def forward(self, batch: EpisodeBatch, detailed_metrics: bool = False) -> EpisodeOutput:
        """Adapt on the support set, return the query loss at the adapted weights."""
        fast, metrics = self.adapt_fast_weights(
            batch.support,
            batch.support_labels,
            batch.n_way,
            names=batch.names,
            source=batch.source,
        )
        q_feats = self.features(fast, batch.query, not self.config.first_order)
        q_logits = self.episode_head().logits(q_feats, fast[HEAD_WEIGHT], fast[HEAD_BIAS])
        loss = F.cross_entropy(q_logits, batch.query_labels)
        metrics["query_loss"] = loss.item()
        metrics["query_accuracy"] = (
            (q_logits.argmax(-1) == batch.query_labels).float().mean().item()
        )
        if detailed_metrics:
            metrics.update(self._detailed_metrics(batch, fast))
        return EpisodeOutput(loss=loss, metrics=metrics, fast_weights=fast)

    @torch.no_grad()
    def _detailed_metrics(self, batch: EpisodeBatch, fast: dict) -> dict[str, float]:
        """Support loss after adaptation and query accuracy of the un-adapted (init) head."""
        if not batch.support_labels.numel():
            return {}  # 0-shot: no support examples to measure
        params = dict(self.model.named_parameters())
        base = {n: params[n] for n in self.fast_names}
        head = self.episode_head()
        weight, bias = head.fit(
            self.features(base, batch.support), batch.support_labels, batch.n_way
        )
        q_before = head.logits(self.features(base, batch.query), weight, bias)
        s_after = head.logits(
            self.features(fast, batch.support), fast[HEAD_WEIGHT], fast[HEAD_BIAS]
        )
        return {
            "query_accuracy_before": (q_before.argmax(-1) == batch.query_labels)
            .float()
            .mean()
            .item(),
            "support_loss_after": F.cross_entropy(s_after, batch.support_labels).item(),
        }
