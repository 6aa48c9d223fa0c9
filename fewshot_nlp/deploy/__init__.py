"""Deployment without torch: an exported classifier as ONNX (fp32, and dynamic int8), in the
layout onnxruntime, Optimum and transformers.js read (``onnx/model.onnx``,
``onnx/model_quantized.onnx`` beside ``config.json`` and the tokenizer), and a runtime that
needs only onnxruntime, numpy and the tokenizers library. The core imports nothing from
here."""

from ..lazy import lazy_attributes

_LAZY = {
    "OnnxArguments": ".arguments",
    "OnnxClassifier": ".runtime",
    "export_onnx": ".export",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
