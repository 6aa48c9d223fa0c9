"""What turns a run into a standard classifier: ``adapt`` (one options dataclass,
``AdaptationArguments``), ``grow`` (labels added to or removed from an export), the
"none of these" label, the class memory and the record the model card is written from.

The run itself (``meta.FewShotModel``) knows nothing of this wing: it loads, saves, adapts
weights and scores episodes; everything here is built on top of it."""

from ..lazy import lazy_attributes

_LAZY = {
    "AdaptationArguments": ".arguments",
    "adapt": ".adaptation",
    "grow": ".growth",
    "AdaptationRecord": ".record",
    "ClassMemory": ".class_memory",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
