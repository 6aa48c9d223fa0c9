"""Tokenize an `Episode` into support and query batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .episodes import Episode
from .labels import label_name_text


@dataclass
class EpisodeBatch:
    """Tokenized support/query inputs (dicts for the model) and their label tensors."""

    support: dict[str, torch.Tensor]
    support_labels: torch.Tensor
    query: dict[str, torch.Tensor]
    query_labels: torch.Tensor
    label_names: list[str]
    source: str
    names: dict[str, torch.Tensor] | None = None  # the label names, tokenized, in label order

    @property
    def n_way(self) -> int:
        return len(self.label_names)

    def to(self, device: torch.device | str) -> EpisodeBatch:
        return EpisodeBatch(
            support={k: v.to(device) for k, v in self.support.items()},
            support_labels=self.support_labels.to(device),
            query={k: v.to(device) for k, v in self.query.items()},
            query_labels=self.query_labels.to(device),
            label_names=self.label_names,
            source=self.source,
            names=None if self.names is None else {k: v.to(device) for k, v in self.names.items()},
        )


class EpisodeCollator:
    """Dynamic padding per side: each batch is as long as its longest text, up to max_length."""

    def __init__(self, tokenizer, max_length: int = 128, label_names: bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.label_names = label_names

    def encode_label_names(self, names) -> dict[str, torch.Tensor]:
        return self.encode([label_name_text(n) for n in names])

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
        if not texts:  # a 0-shot support set: no rows, the keys and dtypes of any other batch
            return {k: v[:0] for k, v in self.encode(["."]).items()}
        encoded = self.tokenizer(
            texts,
            pairs,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return dict(encoded)

    def __call__(self, episode: Episode) -> EpisodeBatch:
        return EpisodeBatch(
            support=self.encode(episode.support_texts, episode.support_text_pairs),
            support_labels=torch.tensor(episode.support_labels, dtype=torch.long),
            query=self.encode(episode.query_texts, episode.query_text_pairs),
            query_labels=torch.tensor(episode.query_labels, dtype=torch.long),
            label_names=list(episode.label_names),
            source=episode.source,
            names=self.encode_label_names(episode.label_names)
            if self.label_names and not episode.support_text_pairs
            else None,
        )
