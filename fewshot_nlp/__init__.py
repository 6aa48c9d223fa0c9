"""fewshot-nlp: few-shot text classification by meta-learning, for Hugging Face models."""

from .data import Episode, EpisodeBatch, EpisodeCollator, EpisodeSampler, TaskSource
from .errors import ConfigError, DataError, FewShotError, ModelError, TrainingError
from .meta import MAML, EpisodeOutput, MAMLConfig
from .modeling import apply_lora, default_lora_config, find_head

__version__ = "0.1.0"

# Heavier entry points, imported on first use (``from fewshot_nlp import MetaTrainer``).
_LAZY = {
    "MetaTrainer": ".meta.trainer",
    "MetaTrainingArguments": ".meta.arguments",
    "adapt": ".adapt",
    "export": ".export",
    "FewShotModel": ".meta.model",
    "MethodRunner": ".evaluation",
    "evaluate_episodes": ".evaluation",
    "evaluate_fixed": ".evaluation",
    "push_folder_to_hub": ".hub",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'fewshot_nlp' has no attribute {name!r}")


__all__ = [
    "MAML",
    "FewShotModel",
    "MethodRunner",
    "MetaTrainer",
    "MetaTrainingArguments",
    "adapt",
    "evaluate_episodes",
    "evaluate_fixed",
    "export",
    "push_folder_to_hub",
    "ConfigError",
    "DataError",
    "Episode",
    "EpisodeBatch",
    "EpisodeCollator",
    "EpisodeOutput",
    "EpisodeSampler",
    "FewShotError",
    "MAMLConfig",
    "ModelError",
    "TaskSource",
    "TrainingError",
    "apply_lora",
    "default_lora_config",
    "find_head",
]
