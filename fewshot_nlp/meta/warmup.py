"""Feature warm-up: make the head's input carry the encoder's mean-pooled sentence embedding.

Sentence encoders such as all-MiniLM-L6-v2 keep their quality in the mean of the last
hidden states, but a standard ``BertForSequenceClassification`` feeds its head the
``[CLS]`` pooler. Measured on BANKING77 fixed 5-shot (77-way nearest class mean, frozen
MiniLM): mean pooling 76.8%, pooler 65.2%. The warm-up keeps the export a standard class
and closes most of that gap before meta-training:

1. the pooler projection (``tanh(W h_cls + b)``) is fitted in closed form (ridge
   regression onto ``atanh`` of the mean-pooled embedding of unlabeled texts);
2. a short distillation trains the whole model so the head's input matches the frozen
   original's mean-pooled embedding (MSE).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.head import unwrap_peft
from .config import MAMLConfig
from .maml import MAML


@dataclass
class FeatureWarmupConfig:
    steps: int = field(default=100, metadata={"help": "Distillation steps (0: only the fit)."})
    learning_rate: float = field(
        default=2e-5, metadata={"help": "Distillation AdamW learning rate."}
    )
    batch_size: int = field(default=32, metadata={"help": "Texts per distillation step."})
    max_length: int = field(default=48, metadata={"help": "Tokenizer max_length for the warm-up."})
    fit_examples: int = field(default=2000, metadata={"help": "Texts for the closed-form fit."})
    ridge: float = field(default=1e-2, metadata={"help": "Ridge penalty of the closed-form fit."})
    seed: int = field(default=0, metadata={"help": "Seed of the text sampling."})


def pooler_projection(model: nn.Module) -> nn.Linear | None:
    """The linear layer of a ``tanh`` pooler between the encoder and the head, if any."""
    base = unwrap_peft(model)
    encoder = getattr(base, "base_model", None)
    pooler = getattr(encoder, "pooler", None)
    if pooler is not None and isinstance(getattr(pooler, "activation", None), nn.Tanh):
        return pooler.dense  # BERT-style
    head = getattr(base, "classifier", None)
    if hasattr(head, "dense") and hasattr(head, "out_proj"):
        return head.dense  # RoBERTa / ELECTRA classification heads
    return None


def mean_pooled(encoder: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    hidden = encoder(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def warm_up_features(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    config: FeatureWarmupConfig | None = None,
    progress: bool = True,
) -> dict:
    """Fit the pooler, then distil mean pooling into the head's input. Modifies ``model``."""
    from tqdm.auto import tqdm

    config = config or FeatureWarmupConfig()
    generator = torch.Generator().manual_seed(config.seed)
    device = next(model.parameters()).device
    teacher = copy.deepcopy(unwrap_peft(model).base_model).eval().requires_grad_(False)
    probe = MAML(model, MAMLConfig(adapt_scope="head"))

    def encode(batch_texts):
        enc = tokenizer(
            batch_texts,
            padding=True,
            truncation=True,
            max_length=config.max_length,
            return_tensors="pt",
        )
        return {k: v.to(device) for k, v in enc.items()}

    was_training = model.training
    model.eval()
    metrics: dict = {}
    projection = pooler_projection(model)
    if projection is not None and config.fit_examples:
        order = torch.randperm(len(texts), generator=generator)[: config.fit_examples].tolist()
        inputs, targets = [], []
        handle = projection.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
        try:
            with torch.no_grad():
                for i in range(0, len(order), 128):
                    batch = encode([texts[j] for j in order[i : i + 128]])
                    targets.append(mean_pooled(teacher, batch))
                    probe.features({}, batch)
        finally:
            handle.remove()
        x = torch.cat(
            [
                torch.cat(inputs).double(),
                torch.ones(len(order), 1, device=device, dtype=torch.float64),
            ],
            1,
        )
        y = torch.atanh(torch.cat(targets).double().clamp(-0.999, 0.999))
        solution = torch.linalg.solve(
            x.T @ x + config.ridge * torch.eye(x.shape[1], device=device, dtype=x.dtype), x.T @ y
        )
        with torch.no_grad():
            projection.weight.copy_(solution[:-1].T.to(projection.weight.dtype))
            projection.bias.copy_(solution[-1].to(projection.bias.dtype))
        metrics["fit_examples"] = len(order)
    params = [
        p for n, p in model.named_parameters() if p.requires_grad and n not in probe.head_params
    ]
    fitted = {n: p.detach().clone() for n, p in model.named_parameters()} if config.steps else {}
    check = encode(
        [texts[i] for i in torch.randperm(len(texts), generator=generator)[:64].tolist()]
    )

    def gap() -> float:  # the warm-up's objective on one fixed batch
        with torch.no_grad():
            return F.mse_loss(probe.features({}, check), mean_pooled(teacher, check)).item()

    metrics["fitted_gap"] = gap()
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    losses = []
    for _ in tqdm(range(config.steps), desc="feature warm-up", disable=not progress):
        idx = torch.randint(len(texts), (config.batch_size,), generator=generator).tolist()
        batch = encode([texts[i] for i in idx])
        with torch.no_grad():
            target = mean_pooled(teacher, batch)
        loss = F.mse_loss(probe.features({}, batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if losses:
        metrics["distilled_gap"] = gap()
    if losses and metrics["distilled_gap"] > metrics["fitted_gap"]:
        # Diverged (learning rate too high): the fitted start was better, keep that.
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(fitted[name])
        warnings.warn(
            "Feature warm-up distillation ended further from the mean-pooled embedding than it "
            f"started ({metrics['fitted_gap']:.4g} -> {metrics['distilled_gap']:.4g}); kept the "
            "weights from before it. Lower the warm-up learning rate.",
            stacklevel=2,
        )
        metrics["restored"] = True
    model.train(was_training)
    if losses:
        metrics.update(
            steps=len(losses), first_loss=losses[0], last_loss=sum(losses[-10:]) / len(losses[-10:])
        )
    return metrics
