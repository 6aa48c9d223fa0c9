"""Classify many texts with a text-classification pipeline, fast and with exact scores.

A padded batch changes the mean-pooling export's scores (its head reads the sum over the
padded length, README "Mean pooling"), so texts are batched only with texts of the same
token length: no padding at all, hence the score each text gets alone, at batched speed.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import interrupts
from .modeling.scoring import length_groups


def token_limit(classifier) -> int:
    """The longest input the pipeline's model accepts."""
    return min(
        classifier.tokenizer.model_max_length,
        getattr(classifier.model.config, "max_position_embeddings", None) or 10**9,
    )


def classify_texts(
    classifier, texts: Sequence[str], batch_size: int, *, progress: bool = False
) -> tuple[list[list[dict]], int]:
    """``(top-k predictions per text, in input order; how many texts were truncated)``."""
    from tqdm.auto import tqdm

    limit = token_limit(classifier)
    lengths = [len(ids) for ids in classifier.tokenizer(list(texts))["input_ids"]]
    results: list[list[dict] | None] = [None] * len(texts)
    groups = length_groups(lengths, limit, batch_size)
    for group in tqdm(groups, desc="predict", disable=not progress or len(groups) < 2):
        interrupts.check()  # a signal that landed in a finalizer stops here
        batch = [texts[i] for i in group]
        predictions = classifier(batch, batch_size=len(batch), truncation=True, max_length=limit)
        for i, top in zip(group, predictions):
            results[i] = top
    return results, sum(n > limit for n in lengths)
