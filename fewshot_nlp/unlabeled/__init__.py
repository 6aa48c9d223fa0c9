"""Unlabeled in-domain text: an adaptation that also learns from the texts a user has but
never labelled (self-training of the head, kept only where the support's k-fold says the
pool helps). A wing beside ``classifier``: its own reading, options
(``UnlabeledArguments``) and evaluation methods; the export stays a standard checkpoint.
The core imports nothing from here."""

from ..lazy import lazy_attributes

_LAZY = {
    "UnlabeledArguments": ".arguments",
    "UnlabeledPool": ".pool",
    "adapt_with_unlabeled": ".adaptation",
    "read_pool": ".pool",
    "self_train": ".self_training",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
