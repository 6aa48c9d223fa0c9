"""What the tokenizer does to a support set, said before the adaptation: texts cut at
``max_length``, label names it cannot read."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from ..data.labels import label_name_text


def warn_truncation(collator, texts, pairs) -> None:
    """Say how many support texts the tokenizer cuts at ``max_length``."""
    lengths = collator.tokenizer(texts, pairs, truncation=False)["input_ids"]
    over = sum(len(ids) > collator.max_length for ids in lengths)
    if over:
        warnings.warn(
            f"{over} of {len(texts)} texts are longer than max_length={collator.max_length} "
            "tokens and were truncated.",
            stacklevel=3,
        )


def warn_unreadable_names(tokenizer, names: Sequence[str]) -> None:
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
