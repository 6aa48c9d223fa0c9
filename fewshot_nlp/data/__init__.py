from .collate import EpisodeBatch, EpisodeCollator
from .episodes import Episode, EpisodeSampler
from .sources import DATA_DIR_ENV, TaskSource, resolve_data_dir

__all__ = [
    "DATA_DIR_ENV",
    "Episode",
    "EpisodeBatch",
    "EpisodeCollator",
    "EpisodeSampler",
    "TaskSource",
    "resolve_data_dir",
]
