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
from torch.utils.checkpoint import checkpoint

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
from .batched import (
    BATCHABLE_MODEL_TYPES,
    TaskBatched,
    can_stack,
    linear_per_task,
    stack_episodes,
)
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
        tasks: int = 1,
    ) -> torch.Tensor:
        """The head's input features with ``params`` swapped into the model. ``tasks`` > 1:
        the inputs are that many episodes' examples, and stacked params apply per episode."""
        size = self.config.support_batch_size
        n = next(iter(inputs.values())).shape[0]
        if size and n > size and tasks == 1:
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
            batched = TaskBatched(tasks, n) if tasks > 1 else contextlib.nullcontext()
            with self._attention_context(create_graph), batched:
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
        """Logits as the inner loop sees them: normalised heads read unit-norm features. A
        stacked head (episodes, classes, hidden) scores each episode's rows with its own."""
        if normalized:
            feats = F.normalize(feats, dim=-1)
        weight, bias = fast[HEAD_WEIGHT], fast[HEAD_BIAS]
        return linear_per_task(feats, weight, bias, weight.shape[0] if weight.dim() == 3 else 1)

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

    def _episode_heads(self, feats: list, parts: list, n_way: int, head_init: str, weights, tasks):
        """The initial head of each episode, from its own examples (and label names); with
        several episodes, stacked as (episodes, classes, hidden)."""
        if tasks == 1:
            labels = torch.cat([part_labels for _, part_labels in parts])
            return self._init_head(torch.cat(feats), labels, n_way, head_init, weights)
        heads = [
            self._init_head(
                torch.cat([f.reshape(tasks, -1, f.shape[-1])[t] for f in feats]),
                torch.cat([part_labels.reshape(tasks, -1)[t] for _, part_labels in parts]),
                n_way,
                head_init,
                weights,
            )
            for t in range(tasks)
        ]
        return torch.stack([w for w, _ in heads]), torch.stack([b for _, b in heads])

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
        tasks: int = 1,
    ) -> tuple[dict[int, dict[str, torch.Tensor]], dict]:
        """The one inner loop: fast weights after each step count in ``snapshots``.

        ``meta_grad``: the weights stay differentiable in the meta-parameters (second order
        through the inner gradients too) and the head reads features as the episode head
        does. Without it, nothing is kept for a meta-gradient: the support set is processed
        in chunks of ``support_batch_size`` that each backpropagate on their own (memory is
        bounded whatever the support's size), 'auto' label names go in only where they help,
        and the heads come back standard (raw features, what the export holds). Not
        ``strict``: a non-finite loss ends the loop, and the later snapshots are missing.
        ``tasks`` > 1 (meta-gradient only): the inputs hold that many episodes of one shape one
        after another (``stack_episodes``); every fast weight gets a leading episode dimension.
        """
        normalized = head_init in NORMALIZED_HEAD_INITS
        create_graph = meta_grad and not self.config.first_order
        examples = labels.shape[0] // tasks  # per episode
        size = labels.shape[0] if meta_grad else (self.config.support_batch_size or examples)
        parts = [
            ({k: v[i : i + size] for k, v in support.items()}, labels[i : i + size])
            for i in range(0, labels.shape[0], size)
        ]
        chunks = len(parts)
        params = dict(self.model.named_parameters())
        fast = {n: params[n] if meta_grad else params[n].detach() for n in self.fast_names}
        if tasks > 1:  # one copy per episode (a view): their gradients come out per episode
            fast = {n: w.expand(tasks, *w.shape) for n, w in fast.items()}
        metrics: dict = {}
        grad_mode = torch.enable_grad if meta_grad else torch.no_grad
        with grad_mode():
            cached = [self.features(fast, inputs, create_graph, tasks) for inputs, _ in parts]
            if names is not None and self.config.label_names != "never":
                name_feats = self.features(fast, names, create_graph, tasks)
                # Meta-training always reads them; adaptation asks whether they help.
                if meta_grad or self._names_help(torch.cat(cached), labels, name_feats, metrics):
                    name_labels = torch.arange(n_way, device=labels.device).repeat(tasks)
                    parts.append((names, name_labels))
                    cached.append(name_feats)
            weights = self._example_weights(
                examples, n_way if len(parts) > chunks else 0, labels.device
            )
            weight, bias = self._episode_heads(cached, parts, n_way, head_init, weights, tasks)
            weights = weights if tasks == 1 else weights.reshape(1, -1).expand(tasks, -1)
        if meta_grad:
            fast[HEAD_WEIGHT] = weight if weight.requires_grad else weight.requires_grad_()
            fast[HEAD_BIAS] = bias if bias.requires_grad else bias.requires_grad_()
        else:
            fast[HEAD_WEIGHT], fast[HEAD_BIAS] = weight.detach(), bias.detach()
        norm = None
        if normalized and not meta_grad:
            norm = torch.cat(cached)[:examples].float().norm(dim=-1).mean().item()
            metrics["feature_norm"] = norm
        # Each episode's loss is its weighted mean; with several, their sum (one backward
        # gives each episode's slice of the stacked weights its own gradient).
        sizes = [len(part_labels) // tasks for _, part_labels in parts]
        part_weights = [w.reshape(-1) for w in weights.split(sizes, dim=-1)]
        total = weights[0].sum() if tasks > 1 else weights.sum()
        total = total if meta_grad else float(total)
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

        def part_loss(i: int, weights: dict, reuse: bool) -> torch.Tensor:
            inputs, part_labels = parts[i]
            with torch.enable_grad():
                f = cached[i] if reuse else self.features(weights, inputs, create_graph, tasks)
                losses = F.cross_entropy(
                    self.head_logits(f, weights, normalized), part_labels, reduction="none"
                )
                return (part_weights[i] * losses).sum() / total

        def meta_step(*values: torch.Tensor, first: bool = False) -> tuple[torch.Tensor, ...]:
            """One differentiable step: the support loss and the stepped weights. The first
            reuses the head init's features, and its head's partials do not follow the
            encoder (``_inner_grads``)."""
            weights = dict(zip(keys, values))
            reuse = first or not encoder_adapts
            loss = sum(part_loss(i, weights, reuse) for i in range(len(parts)))
            grads = self._inner_grads(loss, weights, keys, create_graph, first=first)
            stepped = (weights[n] - self.inner_lr(n) * g for n, g in zip(keys, grads))
            return (loss.detach(), *stepped)

        # Second order keeps every step's graph for the outer backward; checkpointed, a
        # step from the second on keeps only its input weights and is recomputed (forward
        # and inner backward) when the outer backward reaches it.
        step_checkpointing = (
            meta_grad and create_graph and encoder_adapts and self.config.step_checkpointing
        )
        for step in range(max(snapshots)):
            if meta_grad:
                values = [fast[n] for n in keys]
                if step_checkpointing and step > 0:
                    loss, *stepped = checkpoint(meta_step, *values, use_reentrant=False)
                else:
                    loss, *stepped = meta_step(*values, first=step == 0)
                value = self._check_support_loss(loss.item(), source, step)
                fast = dict(zip(keys, stepped))
            else:  # chunk by chunk, each backpropagated on its own
                leaves = [{n: w.detach().requires_grad_() for n, w in fast.items()} for _ in parts]
                grads, value = None, 0.0
                for i, leaf in enumerate(leaves):
                    loss = part_loss(i, leaf, not encoder_adapts)
                    part_grads = self._inner_grads(loss, leaf, keys, False, first=False)
                    grads = (
                        part_grads if grads is None else [a + b for a, b in zip(grads, part_grads)]
                    )
                    value += loss.item()
                if not math.isfinite(value) and not strict:
                    break
                self._check_support_loss(value, source, step)
                with torch.no_grad():
                    fast = {
                        n: fast[n] - _as_float(self.inner_lr(n)) * g for n, g in zip(keys, grads)
                    }
            if step == 0:
                metrics["support_loss_before"] = value
            if step + 1 in snapshots:
                taken[step + 1] = snapshot(fast)
        return taken, metrics

    @staticmethod
    def _check_support_loss(value: float, source: str, step: int) -> float:
        if not math.isfinite(value):
            raise TrainingError(
                f"Non-finite support loss ({value}) on the episode from {source!r} at inner "
                f"step {step}: lower inner_learning_rate or check the inputs. No update was made."
            )
        return value

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

    def can_batch(self, batches: list[EpisodeBatch]) -> bool:
        """Whether ``forward_tasks`` can run these episodes together: one shape, an encoder
        whose weighted operations it knows, no chunking and no per-layer checkpointing (whose
        recompute would run outside the batching)."""
        model_type = getattr(getattr(unwrap_peft(self.model), "config", None), "model_type", None)
        rows = sum(len(b.support_labels) + len(b.query_labels) for b in batches)
        size = self.config.support_batch_size
        return (
            model_type in BATCHABLE_MODEL_TYPES
            and not self.config.gradient_checkpointing
            and (not size or size >= rows)
            and can_stack(batches)
        )

    def forward_tasks(
        self, batches: list[EpisodeBatch], detailed_metrics: bool = False
    ) -> EpisodeOutput:
        """Several episodes at once (see ``can_batch``): each adapted with its own fast weights,
        all in one forward per inner step. The loss is the mean of their query losses (the same
        meta-gradient as running them one by one); metrics are averaged."""
        tasks = len(batches)
        if not self.can_batch(batches):
            raise ConfigError(
                "These episodes cannot run together (different n_way or sizes, chunked support, "
                "per-layer checkpointing, or an encoder outside "
                f"{BATCHABLE_MODEL_TYPES}): run them one by one."
            )
        batch = stack_episodes(batches)
        n_way, steps = batch.n_way, self.config.inner_steps
        taken, metrics = self.inner_loop(
            batch.support,
            batch.support_labels,
            n_way,
            [steps],
            self.config.head_init,
            batch.names,
            source=batch.source,
            tasks=tasks,
        )
        fast = taken[steps]
        create_graph = not self.config.first_order
        q_feats = self.features(fast, batch.query, create_graph, tasks)
        normalized = self.config.head_init in NORMALIZED_HEAD_INITS
        q_logits = self.head_logits(q_feats, fast, normalized)
        losses = F.cross_entropy(q_logits, batch.query_labels, reduction="none")
        loss = losses.reshape(tasks, -1).mean(1).mean()
        if "support_loss_before" in metrics:
            metrics["support_loss_before"] /= tasks  # the inner loop's loss sums the episodes
        metrics["query_loss"] = loss.item()
        correct = (q_logits.argmax(-1) == batch.query_labels).float()
        metrics["query_accuracy"] = correct.mean().item()
        if detailed_metrics:
            each = [
                self._detailed_metrics(b, {n: w[t] for n, w in fast.items()})
                for t, b in enumerate(batches)
            ]
            metrics.update({k: sum(m[k] for m in each) / tasks for k in each[0]})
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
