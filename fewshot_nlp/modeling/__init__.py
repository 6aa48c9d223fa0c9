"""Model pieces: heads, LoRA, pooling, scoring. Imported on first use, so that a torch-free
path (the ONNX runtime's length grouping) can import ``modeling.scoring`` alone."""

from ..lazy import lazy_attributes

_LAZY = {
    "apply_lora": ".lora",
    "class_prototypes": ".head",
    "default_lora_config": ".lora",
    "find_head": ".head",
    "init_head": ".head",
    "set_head": ".head",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
