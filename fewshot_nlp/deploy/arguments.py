"""``OnnxArguments``: how an export is turned into ONNX, checked once, here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..argument_parsing import help_field
from ..errors import ConfigError

ONNX_DIR = "onnx"
FILES = {"fp32": "model.onnx", "int8": "model_quantized.onnx"}  # transformers.js's names


@dataclass
class OnnxArguments:
    quantize: Literal["int8"] | None = help_field(
        "Also write onnx/model_quantized.onnx: dynamic int8 weights (onnxruntime's quantizer).",
        default=None,
    )
    opset: int = help_field("ONNX opset of the graph.", default=17)
    atol: float = help_field(
        "fp32 logits must match the PyTorch model's within this, on probe texts (else nothing "
        "is written).",
        default=1e-4,
    )
    overwrite: bool = help_field("Replace an onnx/ folder fewshot-nlp wrote before.", default=False)

    def __post_init__(self) -> None:
        if self.quantize not in (None, "int8"):
            raise ConfigError(f"quantize={self.quantize!r}: the one quantization is 'int8'.")
        if not 11 <= self.opset <= 21:
            raise ConfigError(f"opset={self.opset}: choose an opset between 11 and 21.")
        if self.atol <= 0:
            raise ConfigError(f"atol={self.atol}: give a positive tolerance.")
