"""Data: sources, episodes, users' files and label rules. Imported on first use, so that
reading a file of texts (``data.files``) loads no torch."""

from ..lazy import lazy_attributes

_LAZY = {
    "DATA_DIR_ENV": ".sources",
    "Episode": ".episodes",
    "EpisodeBatch": ".collate",
    "EpisodeCollator": ".collate",
    "EpisodeSampler": ".episodes",
    "TaskSource": ".sources",
    "resolve_data_dir": ".sources",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
