"""Several episodes through one forward pass, each with its own fast weights.

``torch.func.vmap`` cannot run transformers' encoders (their masks take data-dependent
branches and ``.item()``), so the tasks go through one padded forward instead: their
examples one after another in the batch, and each fast weight given a leading task
dimension. The ``TaskBatched`` mode then runs ``linear``, ``layer_norm`` and ``embedding``
with task ``t``'s weights on task ``t``'s rows (batched matmuls, gathers). Every other
operation is per example already. The sum of the task losses has, for each task's slice
of a stacked weight, exactly that task's gradient: one backward serves every task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..data.collate import EpisodeBatch
from ..modeling.head import linear_per_task

# Encoders whose weighted operations all go through F.linear / F.layer_norm / F.embedding
# (checked by the shared testers, meta-gradients against the one-by-one path).
BATCHABLE_MODEL_TYPES = ("bert", "roberta", "electra", "distilbert", "xlm")


class TaskBatched(TorchFunctionMode):
    """Inside it, weights with a leading dimension of ``tasks`` apply per task; the batch is
    ``tasks`` equal groups of rows. Shared (un-stacked) weights run as usual."""

    def __init__(self, tasks: int, rows: int) -> None:
        super().__init__()
        self.tasks, self.rows = tasks, rows

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return self.linear(*args, **kwargs)
        if func is F.layer_norm:
            return self.layer_norm(*args, **kwargs)
        if func is F.embedding:
            return self.embedding(*args, **kwargs)
        return func(*args, **kwargs)

    def by_task(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.tasks, -1, x.shape[-1])

    def linear(self, x, weight, bias=None):
        return linear_per_task(x, weight, bias, self.tasks)

    def layer_norm(self, x, normalized_shape, weight=None, bias=None, eps=1e-5):
        if weight is None or weight.dim() == len(normalized_shape):
            return F.layer_norm(x, normalized_shape, weight, bias, eps)
        out = self.by_task(F.layer_norm(x, normalized_shape, None, None, eps))
        out = out * weight[:, None, :] + (0 if bias is None else bias[:, None, :])
        return out.reshape(x.shape)

    def embedding(self, ids, weight, padding_idx=None, *args, **kwargs):
        if weight.dim() == 2:
            return F.embedding(ids, weight, padding_idx, *args, **kwargs)
        tasks = self.tasks
        if ids.shape[0] == 1 and self.rows > 1:  # position ids (1, length), one per batch
            out = weight[:, ids[0]]  # (tasks, length, hidden)
            per_task = self.rows // tasks
            out = out[:, None].expand(tasks, per_task, *out.shape[1:])
            return out.reshape(self.rows, *out.shape[2:])
        if ids.shape[0] != self.rows:
            raise RuntimeError(
                f"Task-batched embedding lookup of ids shaped {tuple(ids.shape)} in a batch of "
                f"{self.rows} rows: this encoder cannot run its episodes together; leave "
                "batch_tasks off."
            )
        grouped = ids.reshape(tasks, -1)
        out = weight[torch.arange(tasks, device=ids.device)[:, None], grouped]
        return out.reshape(*ids.shape, weight.shape[-1])


def stack_episodes(batches: list[EpisodeBatch]) -> EpisodeBatch:
    """One batch holding the episodes one after another, padded to a common length (padding
    is masked; labels stay per episode)."""

    def cat(dicts: list[dict]) -> dict:
        length = max(d["input_ids"].shape[1] for d in dicts)
        return {
            key: torch.cat([F.pad(d[key], (0, length - d[key].shape[1])) for d in dicts])
            for key in dicts[0]
        }

    first = batches[0]
    return EpisodeBatch(
        support=cat([b.support for b in batches]),
        support_labels=torch.cat([b.support_labels for b in batches]),
        query=cat([b.query for b in batches]),
        query_labels=torch.cat([b.query_labels for b in batches]),
        label_names=first.label_names,
        source="+".join(dict.fromkeys(b.source for b in batches)),
        names=None if first.names is None else cat([b.names for b in batches]),
    )


def can_stack(batches: list[EpisodeBatch]) -> bool:
    """Episodes of the same shape: n_way, support and query sizes, label names or none."""
    first = batches[0]
    return len(batches) > 1 and all(
        b.n_way == first.n_way
        and len(b.support_labels) == len(first.support_labels)
        and len(b.query_labels) == len(first.query_labels)
        and (b.names is None) == (first.names is None)
        for b in batches
    )
