"""Exceptions that tell the user what was wrong, where, and how to fix it."""


class FewShotError(ValueError):
    """Base class: bad input or configuration the user can act on."""


class DataError(FewShotError):
    """A dataset, file, column or label does not fit what was asked for."""


class ConfigError(FewShotError):
    """An argument or configuration value is invalid."""


class ModelError(FewShotError):
    """A model does not have the structure fewshot-nlp needs."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. non-finite losses); the last good state is kept."""
