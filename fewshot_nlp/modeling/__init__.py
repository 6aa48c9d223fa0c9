from .head import class_prototypes, find_head, init_head, set_head
from .lora import apply_lora, default_lora_config

__all__ = [
    "apply_lora",
    "class_prototypes",
    "default_lora_config",
    "find_head",
    "init_head",
    "set_head",
]
