"""An exported classifier run by onnxruntime with the tokenizer alone: no torch, no
transformers. Texts are batched only with texts of the same token length (nothing padded),
so each gets the score it gets alone, as ``predict`` does with PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelError
from .arguments import FILES, ONNX_DIR

MULTI_LABEL = "multi_label_classification"


class OnnxClassifier:
    """``OnnxClassifier(folder, "int8")``: ``logits(texts)`` and ``predict(texts)``; the
    labels and the problem type come from the folder's ``config.json``."""

    def __init__(self, folder: str | os.PathLike, variant: str = "fp32", threads: int = 0):
        import onnxruntime
        from tokenizers import Tokenizer

        folder = Path(folder)
        if variant not in FILES:
            raise ConfigError(f"ONNX variant {variant!r}: choose one of {sorted(FILES)}.")
        model = folder / ONNX_DIR / FILES[variant]
        if not model.is_file():
            flag = " --quantize int8" if variant == "int8" else ""
            raise ModelError(
                f"{folder} has no {ONNX_DIR}/{FILES[variant]}: write it first with "
                f"`fewshot-nlp export-onnx --model {folder}{flag}`."
            )
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self.multi_label = config.get("problem_type") == MULTI_LABEL
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.limit = _token_limit(folder, config)
        self.tokenizer.enable_truncation(self.limit)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def logits(self, texts: list[str], batch_size: int = 32, progress: bool = False):
        return self._run(texts, batch_size, progress)[0]

    def _run(self, texts: list[str], batch_size: int, progress: bool):
        """``(logits, how many texts were truncated)``, the texts tokenized once."""
        from tqdm.auto import tqdm

        from ..interrupts import check
        from ..modeling.scoring import length_groups

        encodings = self.tokenizer.encode_batch(list(texts))
        truncated = sum(bool(e.overflowing) for e in encodings)
        ids = [e.ids for e in encodings]
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        groups = length_groups([len(x) for x in ids], self.limit, batch_size)
        for group in tqdm(groups, desc="predict", disable=not progress or len(groups) < 2):
            check()  # a signal that landed in a finalizer stops here
            batch = np.asarray([ids[i] for i in group], dtype=np.int64)
            feed = {"input_ids": batch, "attention_mask": np.ones_like(batch)}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(batch)
            out[group] = self.session.run(None, {k: feed[k] for k in self.inputs})[0]
        return out, truncated

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """A sigmoid per label (multi-label) or a softmax over them."""
        logits = logits.astype(np.float64)
        if self.multi_label:
            return 1 / (1 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)

    def predict(self, texts: list[str], batch_size: int = 32, progress: bool = False):
        """``(every label with its score per text, best first, as ``pipeline(...,
        top_k=None)`` gives; how many texts were truncated)``."""
        logits, truncated = self._run(texts, batch_size, progress)
        out = []
        for row in self.probabilities(logits):
            order = np.argsort(-row, kind="stable")
            out.append([{"label": self.labels[j], "score": float(row[j])} for j in order])
        return out, truncated


def _token_limit(folder: Path, config: dict) -> int:
    """The longest input: the tokenizer's ``model_max_length``, within the positions."""
    limit = 10**9
    settings = folder / "tokenizer_config.json"
    if settings.is_file():
        value = json.loads(settings.read_text(encoding="utf-8")).get("model_max_length")
        if isinstance(value, (int, float)) and value < 10**9:
            limit = int(value)
    positions = config.get("max_position_embeddings")
    return min(limit, positions) if positions else limit
