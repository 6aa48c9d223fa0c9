from .config import MAMLConfig
from .maml import MAML, EpisodeOutput

__all__ = ["MAML", "EpisodeOutput", "MAMLConfig"]
