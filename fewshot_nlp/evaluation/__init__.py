"""Evaluation of few-shot methods, paired on the same episodes: the protocols
(``evaluate_episodes``, ``evaluate_fixed``), the methods behind one protocol
(``METHOD_REGISTRY``), the runner that holds a loaded model, and the reports."""

from .methods import (
    DEFAULT_METHODS,
    METHOD_REGISTRY,
    METHODS,
    FewShotMethod,
    FinetuneConfig,
    Task,
    get_method,
    register_method,
)
from .protocols import evaluate_episodes, evaluate_fixed, summarize
from .report import format_table, plot_accuracy, write_results
from .runner import MethodRunner, method_runners

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "METHOD_REGISTRY",
    "FewShotMethod",
    "FinetuneConfig",
    "MethodRunner",
    "Task",
    "evaluate_episodes",
    "evaluate_fixed",
    "format_table",
    "get_method",
    "method_runners",
    "plot_accuracy",
    "register_method",
    "summarize",
    "write_results",
]
