"""The pieces of one outer update that do not need the trainer: an episode's loss,
the meta-gradient's all-reduce, and the logged means of a window of steps."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TrainingError
from .maml import MAML


def episode_loss(maml: MAML, episode, detailed: bool):
    """The query loss of one episode and its metrics. A non-finite loss raises
    ``TrainingError``."""
    out = maml(episode, detailed_metrics=detailed)
    loss = out.loss
    if not torch.isfinite(loss):
        raise TrainingError(f"Non-finite query loss on {episode.source!r}.")
    return loss, out.metrics


def average_gradients(accelerator, params: list[torch.nn.Parameter]) -> None:
    """All-reduce the meta-gradient once, as one flat tensor."""
    if accelerator.num_processes == 1:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    flat = accelerator.reduce(flat, reduction="mean")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def window_logs(window: list[dict], elapsed: float, meta_batch_size: int, maml: MAML) -> dict:
    """Means over the steps since the last log, throughput, and the learned inner rates."""
    logs = {k: float(np.mean([m[k] for m in window if k in m])) for k in window[-1]}
    logs["episodes_per_second"] = len(window) * meta_batch_size / max(elapsed, 1e-9)
    if maml.log_inner_lrs is not None:
        for key, value in maml.log_inner_lrs.items():
            logs[f"inner_lr/{key}"] = float(value.detach().exp())
    return logs
