"""Label names as text: what an encoder reads of a label, and when two spellings are one."""

from __future__ import annotations

import re


def label_name_text(name: str) -> str:
    """A label name as a short text: ``card_arrival`` -> ``card arrival``,
    ``AddToPlaylist`` -> ``add to playlist``, ``DESC:manner`` -> ``desc manner``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return re.sub(r"[\s_:\-./]+", " ", spaced).strip().lower()


def is_descriptive_label(name: str) -> bool:
    """Whether a label's name says something an encoder can read ('card_arrival' does; '3',
    'LABEL_3' and '' do not): the condition for classifying by the name alone."""
    text = label_name_text(name)
    return bool(re.search(r"[^\W\d_]", text)) and not re.fullmatch(r"label \d+", text)
