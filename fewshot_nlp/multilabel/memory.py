"""What a multi-label export keeps so that labels can be added or removed without the old
texts: every training example's sentence embedding (as the head read it) and its labels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelError

MEMORY_FILE = "fewshot_nlp_multilabel.safetensors"


@dataclass
class MultiLabelMemory:
    """``features`` (examples, d) and ``targets`` (examples, labels) 0/1, columns in
    ``label_names`` order. ``labels`` and ``is_name`` serve the model card's summary."""

    features: torch.Tensor
    targets: torch.Tensor
    label_names: list[str]

    @property
    def labels(self) -> list[int]:
        return list(range(len(self.features)))

    @property
    def is_name(self) -> torch.Tensor:
        return torch.zeros(len(self.features), dtype=torch.bool)

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder) / MEMORY_FILE
        tensors = {"features": self.features.contiguous(), "targets": self.targets.contiguous()}
        save_file(tensors, str(path), metadata={"label_names": json.dumps(self.label_names)})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> MultiLabelMemory:
        from safetensors import safe_open

        path = Path(folder) / MEMORY_FILE
        if not path.is_file():
            raise ModelError(
                f"{folder} has no {MEMORY_FILE}: it was not exported by fewshot-nlp's multi-label "
                "adaptation (or the file was removed), so it cannot grow. Adapt the meta-trained "
                "model to the whole label set instead."
            )
        with safe_open(str(path), framework="pt") as handle:
            names = json.loads(handle.metadata()["label_names"])
            return cls(handle.get_tensor("features"), handle.get_tensor("targets"), names)

    def without(self, labels: list[str]) -> MultiLabelMemory:
        """The memory with ``labels`` dropped (their examples stay, as negatives of the rest)."""
        keep = [j for j, name in enumerate(self.label_names) if name not in labels]
        return MultiLabelMemory(
            self.features, self.targets[:, keep], [self.label_names[j] for j in keep]
        )
