"""fewshot-nlp: few-shot text classification by meta-learning, for Hugging Face models."""

from .errors import ConfigError, DataError, FewShotError, ModelError, TrainingError
from .lazy import lazy_attributes

__version__ = "0.1.0"

# Imported on first use (``from fewshot_nlp import MetaTrainer``): ``import fewshot_nlp``
# loads no torch, so the command line installs its signal handlers first.
_LAZY = {
    "Episode": ".data",
    "EpisodeBatch": ".data",
    "EpisodeCollator": ".data",
    "EpisodeSampler": ".data",
    "TaskSource": ".data",
    "MAML": ".meta",
    "EpisodeOutput": ".meta",
    "MAMLConfig": ".meta",
    "apply_lora": ".modeling",
    "default_lora_config": ".modeling",
    "find_head": ".modeling",
    "MetaTrainer": ".meta.trainer",
    "MetaTrainingArguments": ".meta.arguments",
    "adapt": ".classifier",
    "grow": ".classifier",
    "AdaptationArguments": ".classifier",
    "export": ".export",
    "FewShotModel": ".meta.model",
    "MethodRunner": ".evaluation",
    "evaluate_episodes": ".evaluation",
    "evaluate_fixed": ".evaluation",
    "push_folder_to_hub": ".hub",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "AdaptationArguments",
    "MAML",
    "FewShotModel",
    "MethodRunner",
    "MetaTrainer",
    "MetaTrainingArguments",
    "adapt",
    "grow",
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
