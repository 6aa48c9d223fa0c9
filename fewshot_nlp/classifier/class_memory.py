"""What an exported classifier keeps so that labels can be added and removed later without
the old texts: the head's input features of every training example (and label name) under
the exported encoder, their labels and weights, and how the head was fitted.

A head refitted on these rows plus a new class's rows is the head that adapting all classes
at once would fit (for a head-only adaptation, exactly). The rows are small beside the
weights (150 classes x 5 shots x 384 floats: 1.2 MB) and live in safetensors beside them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.labels import label_name_text
from ..errors import ModelError

CLASS_MEMORY_FILE = "fewshot_nlp_classes.safetensors"
FORMAT_VERSION = "1"


@dataclass
class ClassMemory:
    """The rows a head is fitted on. ``labels`` index ``label_names``; name rows (a label's
    name as one more example, weighted) are marked ``is_name``."""

    features: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    is_name: torch.Tensor
    label_names: list[str]
    head_init: str
    logit_scale: float
    regularization: float
    max_length: int
    names_used: bool
    label_name_weight: float
    encoder_fingerprint: str
    rejection: dict | None = field(default=None)
    # out-of-scope examples the rejection was fitted with (``unknown_data``): a growth
    # re-chooses the threshold by the same rule on them
    unknown_features: torch.Tensor | None = field(default=None)

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder) / CLASS_MEMORY_FILE
        metadata = {
            "format_version": FORMAT_VERSION,
            "label_names": json.dumps(self.label_names),
            "head_init": self.head_init,
            "logit_scale": repr(self.logit_scale),
            "regularization": repr(self.regularization),
            "max_length": str(self.max_length),
            "names_used": json.dumps(self.names_used),
            "label_name_weight": repr(self.label_name_weight),
            "encoder_fingerprint": self.encoder_fingerprint,
            "rejection": json.dumps(self.rejection),
        }
        tensors = {
            "features": self.features.float().contiguous(),
            "labels": self.labels.long().contiguous(),
            "weights": self.weights.float().contiguous(),
            "is_name": self.is_name.to(torch.uint8).contiguous(),
        }
        if self.unknown_features is not None:
            tensors["unknown_features"] = self.unknown_features.float().contiguous()
        save_file(tensors, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ClassMemory | None:
        """The memory of an exported folder; None for a folder exported without one."""
        from safetensors import safe_open

        path = Path(folder) / CLASS_MEMORY_FILE
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {meta.get('format_version')!r}")
            return cls(
                features=tensors["features"],
                labels=tensors["labels"],
                weights=tensors["weights"],
                is_name=tensors["is_name"].bool(),
                label_names=json.loads(meta["label_names"]),
                head_init=meta["head_init"],
                logit_scale=float(meta["logit_scale"]),
                regularization=float(meta["regularization"]),
                max_length=int(meta["max_length"]),
                names_used=json.loads(meta["names_used"]),
                label_name_weight=float(meta["label_name_weight"]),
                encoder_fingerprint=meta["encoder_fingerprint"],
                rejection=json.loads(meta.get("rejection", "null")),
                unknown_features=tensors.get("unknown_features"),
            )
        except (KeyError, ValueError, OSError) as error:
            raise ModelError(
                f"{path} is not a class memory this version reads ({error}). Re-adapt once "
                "from the meta-model with all the training examples to write a new one."
            ) from error


def is_exported_classifier(path: str | Path) -> bool:
    """A classifier fewshot-nlp adapted (its config carries the adaptation record, or the
    folder its class memory), not a meta-trained run or a checkpoint of one. Decided by the
    model's own files, so a copy (``save_pretrained``, or files copied by hand) is one too."""
    from .record import CONFIG_KEY

    folder = Path(path)
    if not folder.is_dir() or (folder / "fewshot_nlp.json").exists():
        return False
    if (folder / CLASS_MEMORY_FILE).is_file():
        return True
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get(CONFIG_KEY))


def encoder_fingerprint(model: torch.nn.Module, head_name: str) -> str:
    """A hash of every weight but the head's: the stored features hold only for this
    encoder, so a folder whose encoder changed since is refused, not silently refitted."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(head_name + ".") or not tensor.is_floating_point():
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def class_memory_for(
    reader, config, classifier, texts, pairs, label_ids, names, metrics, rejection, unknown=None
) -> ClassMemory:
    """The memory of a fresh adaptation: every row as the exported ``classifier`` reads it.
    ``reader`` (a ``FewShotModel``) computes features as the export does; ``config`` is the
    adaptation's ``MAMLConfig``, whose head rule a growth refits with; ``unknown``: the
    out-of-scope texts the rejection was fitted with."""
    hidden = classifier.get_submodule(reader.maml.head_name).weight.shape[1]
    feats = reader.features(texts, pairs) if texts else torch.zeros(0, hidden)
    labels = torch.as_tensor(label_ids, dtype=torch.long)
    weights = torch.ones(len(label_ids))
    names_used = bool(metrics.get("label_names_used")) and pairs is None
    memory = ClassMemory(
        features=feats.float(),
        labels=labels,
        weights=weights,
        is_name=torch.zeros(len(label_ids), dtype=torch.bool),
        label_names=list(names),
        head_init=config.adaptation_head_init,
        logit_scale=config.logit_scale,
        regularization=config.head_regularization,
        max_length=reader.collator.max_length,
        names_used=names_used,
        label_name_weight=config.label_name_weight,
        encoder_fingerprint=encoder_fingerprint(classifier, reader.maml.head_name),
        rejection=rejection_settings(rejection),
        unknown_features=reader.features(unknown).float() if unknown else None,
    )
    if names_used:
        add_name_rows(memory, reader, list(range(len(names))))
    return memory


def append_rows(memory: ClassMemory, feats, labels, weight: float, is_name: bool) -> None:
    memory.features = torch.cat([memory.features, feats.float()])
    memory.labels = torch.cat([memory.labels, labels.long()])
    memory.weights = torch.cat([memory.weights, torch.full((len(labels),), float(weight))])
    memory.is_name = torch.cat([memory.is_name, torch.full((len(labels),), is_name)])


def add_name_rows(memory: ClassMemory, reader, classes: list[int]) -> None:
    texts = [label_name_text(memory.label_names[c]) for c in classes]
    feats = reader.features(texts)
    append_rows(memory, feats, torch.as_tensor(classes), memory.label_name_weight, True)


def rejection_settings(fit) -> dict | None:
    """What a later refit needs of the rejection: its label and loss budget."""
    if fit is None:
        return None
    return {"label": fit.label, "max_in_scope_loss": fit.max_in_scope_loss, "rule": fit.rule}
