"""Evaluation of few-shot methods, paired on the same episodes: the protocols
(``evaluate_episodes``, ``evaluate_fixed``), the methods behind one protocol
(``METHOD_REGISTRY``), the runner that holds a loaded model, and the reports.

Names are imported on first use, so that the CLI's argument classes can read the method
registry without loading the runner and the protocols (and what they import)."""

from ..lazy import lazy_attributes

_LAZY = {
    **dict.fromkeys(
        (
            "DEFAULT_METHODS",
            "METHODS",
            "METHOD_REGISTRY",
            "FewShotMethod",
            "FinetuneConfig",
            "Task",
            "check_methods",
            "get_method",
            "parse_episode_caps",
            "register_method",
        ),
        ".methods",
    ),
    **dict.fromkeys(("evaluate_episodes", "evaluate_fixed", "summarize"), ".protocols"),
    "evaluate_files": ".files",
    **dict.fromkeys(("evaluate_out_of_scope", "OUT_OF_SCOPE_METHODS"), ".out_of_scope"),
    **dict.fromkeys(("format_table", "plot_accuracy", "write_results"), ".report"),
    **dict.fromkeys(("MethodRunner", "method_runners"), ".runner"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
