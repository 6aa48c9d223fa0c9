"""fewshot-nlp: few-shot text classification by meta-learning, for Hugging Face models."""

from .data import Episode, EpisodeBatch, EpisodeCollator, EpisodeSampler, TaskSource
from .errors import ConfigError, DataError, FewShotError, ModelError, TrainingError
from .meta import MAML, EpisodeOutput, MAMLConfig
from .modeling import apply_lora, default_lora_config, find_head

__version__ = "0.1.0"

__all__ = [
    "MAML",
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
