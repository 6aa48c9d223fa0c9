"""Scores of texts as a model gives each alone, at batched speed: texts are batched only with
texts of the same token length, so nothing is padded (a padded batch changes the mean-pooling
export's scores, README "Mean pooling")."""

from __future__ import annotations

from collections.abc import Sequence


def length_groups(lengths: Sequence[int], limit: int, batch_size: int) -> list[list[int]]:
    """Indices in runs of one (truncated) token length, at most ``batch_size`` each."""
    order = sorted(range(len(lengths)), key=lambda i: min(lengths[i], limit))
    groups: list[list[int]] = []
    for i in order:
        same = groups and min(lengths[groups[-1][0]], limit) == min(lengths[i], limit)
        if same and len(groups[-1]) < batch_size:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def text_logits(model, tokenizer, texts: Sequence[str], batch_size: int = 32, max_length=None):
    """The logits of ``model`` for each text as it scores it alone (equal-length batches)."""
    import torch

    limit = max_length or tokenizer.model_max_length
    encoded = tokenizer(list(texts), truncation=True, max_length=limit)["input_ids"]
    out = torch.empty(len(texts), model.config.num_labels)
    device = next(model.parameters()).device
    with torch.no_grad():
        for group in length_groups([len(ids) for ids in encoded], limit, batch_size):
            ids = torch.tensor([encoded[i] for i in group], device=device)
            mask = torch.ones_like(ids)
            out[group] = model(input_ids=ids, attention_mask=mask).logits.float().cpu()
    return out
