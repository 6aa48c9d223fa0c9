"""MAML on any sequence classifier with fast weights as a dict (no model copies).

The encoder runs through ``torch.func.functional_call`` with the adapted tensors swapped
in; the head is applied by us to the features its input hook captures, so it can take any
episode's number of classes. Second order keeps the inner gradients' graph
(``create_graph=True``); first order does not.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..data.collate import EpisodeBatch
from ..errors import ConfigError, ModelError, TrainingError
from ..modeling.head import (
    NORMALIZED_HEAD_INITS,
    find_head,
    head_module,
    head_param_names,
    init_head,
    standard_head,
    unwrap_peft,
)
from ..modeling.lora import lora_param_names
from ..modeling.pooling import is_mean_pooling
from .config import MAMLConfig

logger = logging.getLogger(__name__)

HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"
# Encoder layer i: BERT-style names, then XLM's (the pooling="mean" class).
_LAYER_RE = re.compile(r"\.(?:layer|layers|block|h|attentions|ffns|layer_norm[12])\.(\d+)\.")


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Non-reentrant checkpointing: the only kind that supports second-order gradients."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {"use_reentrant": False, "context_fn": _recompute_with_forward_attention}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif getattr(base, "supports_gradient_checkpointing", False):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise ModelError(f"{type(base).__name__} does not support gradient checkpointing.")


def _recompute_with_forward_attention():
    """Checkpoint contexts: the recompute picks the SDPA kernels the forward picked.

    Second order runs its forward under the math kernel only; a recompute in the outer
    backward (outside that context) would pick another kernel, whose saved tensors differ.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    enabled = {
        SDPBackend.MATH: torch.backends.cuda.math_sdp_enabled(),
        SDPBackend.FLASH_ATTENTION: torch.backends.cuda.flash_sdp_enabled(),
        SDPBackend.EFFICIENT_ATTENTION: torch.backends.cuda.mem_efficient_sdp_enabled(),
        SDPBackend.CUDNN_ATTENTION: torch.backends.cuda.cudnn_sdp_enabled(),
    }
    backends = [b for b, on in enabled.items() if on]
    return contextlib.nullcontext(), _Reenterable(lambda: sdpa_kernel(backends))


class _Reenterable:
    """A context entered once per recompute (second order may recompute a block twice)."""

    def __init__(self, make) -> None:
        self.make, self.active = make, []

    def __enter__(self):
        context = self.make()
        self.active.append(context)
        return context.__enter__()

    def __exit__(self, *exc):
        return self.active.pop().__exit__(*exc)


def _as_float(value) -> float | torch.Tensor:
    return value.detach() if isinstance(value, torch.Tensor) else value


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
        self.fast_names = self._select_fast_names()
        self.log_inner_lrs = self._make_inner_lrs()
        if self.config.gradient_checkpointing:
            enable_activation_checkpointing(model)

    # ------------------------------------------------------------------ set-up
    def _select_fast_names(self) -> list[str]:
        scope = self.config.adapt_scope
        named = [(n, p) for n, p in self.model.named_parameters() if n not in self.head_params]
        if scope == "head":
            return []
        if scope == "lora":
            return lora_param_names(self.model)
        trainable = [n for n, p in named if p.requires_grad]
        if scope == "full":
            return trainable
        k = int(scope.split(":")[1])
        layer_ids = {int(m.group(1)) for n in trainable if (m := _LAYER_RE.search(n))}
        if not layer_ids:
            raise ModelError(
                f"adapt_scope={scope!r}: no numbered encoder layers found in "
                f"{type(self.model).__name__}; use 'full', 'lora' or 'head'."
            )
        first_top = max(layer_ids) + 1 - k
        embeddings_end = min(i for i, (n, _) in enumerate(named) if _LAYER_RE.search(n))
        names = []
        for i, (n, p) in enumerate(named):
            if not p.requires_grad:
                continue
            match = _LAYER_RE.search(n)
            if (match and int(match.group(1)) >= first_top) or (not match and i > embeddings_end):
                names.append(n)
        return names

    def _lr_key(self, name: str) -> str:
        if self.config.learn_inner_lr == "layer":
            if name in (HEAD_WEIGHT, HEAD_BIAS):
                return "head"
            match = _LAYER_RE.search(name)
            return f"layer_{match.group(1)}" if match else "other"
        return name.replace(".", "__")

    def _make_inner_lrs(self) -> nn.ParameterDict | None:
        if self.config.learn_inner_lr == "none":
            return None
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

    # ------------------------------------------------------------------ forward pieces
    @contextlib.contextmanager
    def _attention_context(self, create_graph: bool):
        """Second order needs double backward, which only the math SDPA kernel has."""
        impl = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        if not create_graph or impl in (None, "eager"):
            yield
            return
        if impl != "sdpa":
            raise ConfigError(
                f"Second-order MAML needs double backward through attention, which "
                f"attn_implementation={impl!r} does not provide. Load the model with "
                "attn_implementation='eager' or 'sdpa', or set first_order=True."
            )
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.MATH]):
            yield

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
            with self._attention_context(create_graph):
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
        """Logits of a standard head (what ``adapt_fast_weights`` returns without meta-grad)."""
        return F.linear(feats, fast[HEAD_WEIGHT], fast[HEAD_BIAS])

    @staticmethod
    def head_logits(
        feats: torch.Tensor, fast: dict[str, torch.Tensor], normalized: bool
    ) -> torch.Tensor:
        """Logits as the inner loop sees them: normalised heads read unit-norm features."""
        if normalized:
            feats = F.normalize(feats, dim=-1)
        return F.linear(feats, fast[HEAD_WEIGHT], fast[HEAD_BIAS])

    def _init_head(self, feats, labels, n_way, head_init: str, weights=None):
        normalized = head_init in NORMALIZED_HEAD_INITS
        return init_head(
            F.normalize(feats, dim=-1) if normalized else feats,
            labels,
            n_way,
            head_init,
            weights=weights,
            logit_scale=self.config.logit_scale,
            regularization=self.config.head_regularization,
        )

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
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Run the inner loop on a support set; return the fast weights and support metrics.

        With ``meta_grad`` the result stays connected to the meta-parameters (through the
        head init always; through the inner gradients too when second order). Without it,
        the head is returned as a standard linear head on raw features (what the export
        holds), and the number of steps may be chosen by cross-validation. ``names`` are the
        tokenized label names, one per class in label order: extra support examples when
        ``config.label_names`` says so.
        """
        if n_way < 2:
            raise ConfigError(f"Episode from {source!r} has {n_way} class; MAML needs >= 2.")
        metrics: dict = {}
        if not meta_grad and inner_steps is None and self.config.adapt_step_candidates:
            inner_steps = self.choose_inner_steps(support, labels, n_way, names, metrics)
        steps = self.config.inner_steps if inner_steps is None else inner_steps
        head_init = self.config.head_init if meta_grad else self.config.adaptation_head_init
        taken, more = self.inner_loop(
            support, labels, n_way, [steps], head_init, names, source=source, meta_grad=meta_grad
        )
        if meta_grad:
            return taken[steps], more
        return taken[steps], {**more, **metrics, "inner_steps": steps}

    def _example_weights(self, examples: int, n_way: int, device) -> torch.Tensor:
        """1 per real example, ``label_name_weight`` per label-name example (these come last)."""
        weights = torch.ones(examples + n_way, device=device)
        weights[examples:] = self.config.label_name_weight
        return weights

    @staticmethod
    def _inner_grads(loss, fast, names, create_graph: bool, first: bool):
        """Partial derivatives of the support loss, the head held fixed.

        At step 0 the head is a function of the encoder (prototypes). The inner step must
        not follow that path, yet the meta-gradient must: so the head's partials are taken
        first, and the encoder's backward is given ``-dL/dW`` at the head to cancel it.
        """
        head = fast[HEAD_WEIGHT], fast[HEAD_BIAS]
        encoder = [n for n in names if n not in (HEAD_WEIGHT, HEAD_BIAS)]
        if not (first and head[0].grad_fn is not None):
            return torch.autograd.grad(
                loss,
                [fast[n] for n in names],
                create_graph=create_graph,
                retain_graph=create_graph or first,
                allow_unused=True,
                materialize_grads=True,
            )
        g_head = torch.autograd.grad(loss, head, retain_graph=True, create_graph=create_graph)
        g_enc = ()
        if encoder:
            g_enc = torch.autograd.grad(
                [loss, *head],
                [fast[n] for n in encoder],
                grad_outputs=[torch.ones_like(loss), -g_head[0], -g_head[1]],
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
                materialize_grads=True,
            )
        by_name = dict(zip(encoder, g_enc))
        by_name[HEAD_WEIGHT], by_name[HEAD_BIAS] = g_head
        return [by_name[n] for n in names]

    def inner_loop(
        self,
        support: dict[str, torch.Tensor],
        labels: torch.Tensor,
        n_way: int,
        snapshots: list[int],
        head_init: str,
        names: dict[str, torch.Tensor] | None = None,
        *,
        source: str = "episode",
        meta_grad: bool = True,
        strict: bool = True,
    ) -> tuple[dict[int, dict[str, torch.Tensor]], dict]:
        """The one inner loop: fast weights after each step count in ``snapshots``.

        ``meta_grad``: the weights stay differentiable in the meta-parameters (second order
        through the inner gradients too) and the head reads features as the episode head
        does. Without it, nothing is kept for a meta-gradient: the support set is processed
        in chunks of ``support_batch_size`` that each backpropagate on their own (memory is
        bounded whatever the support's size), 'auto' label names go in only where they help,
        and the heads come back standard (raw features, what the export holds). Not
        ``strict``: a non-finite loss ends the loop, and the later snapshots are missing.
        """
        normalized = head_init in NORMALIZED_HEAD_INITS
        create_graph = meta_grad and not self.config.first_order
        examples = labels.shape[0]
        size = examples if meta_grad else (self.config.support_batch_size or examples)
        parts = [
            ({k: v[i : i + size] for k, v in support.items()}, labels[i : i + size])
            for i in range(0, examples, size)
        ]
        chunks = len(parts)
        params = dict(self.model.named_parameters())
        fast = {n: params[n] if meta_grad else params[n].detach() for n in self.fast_names}
        metrics: dict = {}
        grad_mode = torch.enable_grad if meta_grad else torch.no_grad
        with grad_mode():
            cached = [self.features(fast, inputs, create_graph) for inputs, _ in parts]
            if names is not None and self.config.label_names != "never":
                name_feats = self.features(fast, names, create_graph)
                # Meta-training always reads them; adaptation asks whether they help.
                if meta_grad or self._names_help(torch.cat(cached), labels, name_feats, metrics):
                    parts.append((names, torch.arange(n_way, device=labels.device)))
                    cached.append(name_feats)
            weights = self._example_weights(
                examples, n_way if len(parts) > chunks else 0, labels.device
            )
            feats = torch.cat(cached)
            all_labels = torch.cat([part_labels for _, part_labels in parts])
            weight, bias = self._init_head(feats, all_labels, n_way, head_init, weights)
        if meta_grad:
            fast[HEAD_WEIGHT] = weight if weight.requires_grad else weight.requires_grad_()
            fast[HEAD_BIAS] = bias if bias.requires_grad else bias.requires_grad_()
        else:
            fast[HEAD_WEIGHT], fast[HEAD_BIAS] = weight.detach(), bias.detach()
        norm = None
        if normalized and not meta_grad:
            norm = feats[:examples].float().norm(dim=-1).mean().item()
            metrics["feature_norm"] = norm
        part_weights = list(weights.split([len(part_labels) for _, part_labels in parts]))
        total = weights.sum() if meta_grad else float(weights.sum())
        encoder_adapts = bool(self.fast_names)

        def snapshot(weights):
            if meta_grad:
                return weights
            out = dict(weights)
            out[HEAD_WEIGHT], out[HEAD_BIAS] = standard_head(
                weights[HEAD_WEIGHT], weights[HEAD_BIAS], norm
            )
            return out

        taken = {0: snapshot(fast)} if 0 in snapshots else {}
        keys = list(fast)
        for step in range(max(snapshots)):
            # Step 0 reuses the init's features where they carry the graph it needs.
            reuse = not encoder_adapts or (meta_grad and step == 0)
            grads: list[torch.Tensor] | None = None
            step_loss = 0.0
            for i, (inputs, part_labels) in enumerate(parts):
                leaf = (
                    fast if meta_grad else {n: w.detach().requires_grad_() for n, w in fast.items()}
                )
                with torch.enable_grad():
                    f = cached[i] if reuse else self.features(leaf, inputs, create_graph)
                    logits = self.head_logits(f, leaf, normalized)
                    losses = F.cross_entropy(logits, part_labels, reduction="none")
                    loss = (part_weights[i] * losses).sum() / total
                if meta_grad:  # one backward through the whole support set
                    step_loss = loss + step_loss
                    continue
                part_grads = self._inner_grads(loss, leaf, keys, False, first=False)
                grads = part_grads if grads is None else [a + b for a, b in zip(grads, part_grads)]
                step_loss += loss.item()
            value = step_loss.item() if meta_grad else step_loss
            if not math.isfinite(value):
                if not strict:
                    break
                raise TrainingError(
                    f"Non-finite support loss ({value}) on the episode from {source!r} at inner "
                    f"step {step}: lower inner_learning_rate or check the inputs. No update was "
                    "made."
                )
            if step == 0:
                metrics["support_loss_before"] = value
            if meta_grad:
                grads = self._inner_grads(step_loss, fast, keys, create_graph, first=step == 0)
                fast = {n: fast[n] - self.inner_lr(n) * g for n, g in zip(keys, grads)}
            else:
                with torch.no_grad():
                    fast = {
                        n: fast[n] - _as_float(self.inner_lr(n)) * g for n, g in zip(keys, grads)
                    }
            if step + 1 in snapshots:
                taken[step + 1] = snapshot(fast)
        return taken, metrics

    def _names_help(self, feats, labels, name_feats, metrics: dict) -> bool:
        """Whether the label names go in: 'auto' asks if the names alone classify the support
        examples (nearest name by cosine) at least two standard errors above chance."""
        if self.config.label_names == "always":
            metrics["label_names_used"] = True
            return True
        similarity = F.normalize(feats.float(), dim=-1) @ F.normalize(name_feats.float(), dim=-1).T
        accuracy = (similarity.argmax(-1) == labels).float().mean().item()
        chance = 1.0 / name_feats.shape[0]
        needed = chance + 2 * math.sqrt(chance * (1 - chance) / len(labels))
        metrics["label_name_accuracy"] = accuracy
        metrics["label_names_used"] = accuracy >= needed
        return metrics["label_names_used"]

    def choose_inner_steps(self, support, labels, n_way: int, names, metrics: dict) -> int:
        """Inner steps among ``adapt_step_candidates``, by k-fold cross-validation on the support
        set (ties go to fewer steps). With fewer than 2 examples in some class there is nothing
        to hold out: falls back to the meta-trained ``inner_steps`` and says so in ``metrics``.
        """
        candidates = sorted(set(self.config.adapt_step_candidates))
        counts = torch.bincount(labels.cpu(), minlength=n_way)
        folds = min(self.config.adapt_cv_folds, int(counts.min()))
        if len(candidates) == 1:
            return candidates[0]
        if folds < 2:
            metrics["cv_fallback"] = (
                f"cross-validation needs >= 2 examples per class, the smallest class has "
                f"{int(counts.min())}: used the meta-trained inner_steps="
                f"{self.config.inner_steps}"
            )
            logger.info(metrics["cv_fallback"])
            return self.config.inner_steps
        generator = torch.Generator().manual_seed(0)
        fold_of = torch.empty_like(labels, device="cpu")
        for c in range(n_way):
            members = (labels.cpu() == c).nonzero().flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            fold_of[members] = torch.arange(len(members)) % folds
        fold_of = fold_of.to(labels.device)
        correct = dict.fromkeys(candidates, 0)
        head_init = self.config.adaptation_head_init
        for fold in range(folds):
            train, held = fold_of != fold, fold_of == fold
            part = {k: v[train] for k, v in support.items()}
            taken, _ = self.inner_loop(
                part,
                labels[train],
                n_way,
                candidates,
                head_init,
                names,
                source="cross-validation",
                meta_grad=False,
                strict=False,
            )
            held_inputs = {k: v[held] for k, v in support.items()}
            with torch.no_grad():
                for steps, fast in taken.items():
                    logits = self.logits(self.features(fast, held_inputs), fast)
                    correct[steps] += int((logits.argmax(-1) == labels[held]).sum())
        best = max(candidates, key=lambda s: (correct[s], -s))
        metrics["cv_accuracy"] = {s: correct[s] / labels.shape[0] for s in candidates}
        metrics["cv_folds"] = folds
        return best

    def forward(self, batch: EpisodeBatch, detailed_metrics: bool = False) -> EpisodeOutput:
        """Adapt on the support set, return the query loss at the adapted weights."""
        fast, metrics = self.adapt_fast_weights(
            batch.support,
            batch.support_labels,
            batch.n_way,
            names=batch.names,
            source=batch.source,
        )
        create_graph = not self.config.first_order
        q_feats = self.features(fast, batch.query, create_graph)
        normalized = self.config.head_init in NORMALIZED_HEAD_INITS
        q_logits = self.head_logits(q_feats, fast, normalized)
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
        params = dict(self.model.named_parameters())
        base = {n: params[n] for n in self.fast_names}
        normalized = self.config.head_init in NORMALIZED_HEAD_INITS
        s_feats = self.features(base, batch.support)
        head = self._init_head(s_feats, batch.support_labels, batch.n_way, self.config.head_init)
        init = {HEAD_WEIGHT: head[0], HEAD_BIAS: head[1]}
        q_before = self.head_logits(self.features(base, batch.query), init, normalized)
        s_after = self.head_logits(self.features(fast, batch.support), fast, normalized)
        return {
            "query_accuracy_before": (q_before.argmax(-1) == batch.query_labels)
            .float()
            .mean()
            .item(),
            "support_loss_after": F.cross_entropy(s_after, batch.support_labels).item(),
        }
