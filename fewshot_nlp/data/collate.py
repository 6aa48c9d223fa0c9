"""Tokenize an `Episode` into support and query batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .episodes import Episode


@dataclass
class EpisodeBatch:
    """Tokenized support/query inputs (dicts for the model) and their label tensors."""

    support: dict[str, torch.Tensor]
    support_labels: torch.Tensor
    query: dict[str, torch.Tensor]
    query_labels: torch.Tensor
    label_names: list[str]
    source: str

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
        )


class EpisodeCollator:
    """Dynamic padding per side: each batch is as long as its longest text, up to max_length."""

    def __init__(self, tokenizer, max_length: int = 128) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
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
        )
