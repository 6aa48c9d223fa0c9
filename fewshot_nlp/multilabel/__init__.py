"""Multi-label classification: a text may carry several labels (or none). A wing beside the
single-label ``classifier``: its own reading, head, options (``MultiLabelArguments``) and
evaluation; the export is a standard checkpoint with ``problem_type:
"multi_label_classification"`` (plain ``pipeline()`` applies a sigmoid). The core imports
nothing from here."""

from ..lazy import lazy_attributes

_LAZY = {
    "MultiLabelArguments": ".arguments",
    "MultiLabelData": ".data",
    "adapt_multilabel": ".adaptation",
    "evaluate_multilabel": ".evaluation",
    "is_multilabel_file": ".data",
    "read_multilabel": ".data",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
