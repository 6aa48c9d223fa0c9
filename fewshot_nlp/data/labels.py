"""Label names as text: what an encoder reads of a label, and when two spellings are one."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable


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


def label_key(name: str) -> str:
    """Labels equal but for case, spaces or underscores share a key (``card_arrival``,
    ``Card_Arrival``, ``card arrival``): the one rule by which two spellings are one label."""
    return " ".join(str(name).replace("_", " ").split()).casefold()


def alike_labels(names: Iterable[str]) -> list[list[str]]:
    """Groups of distinct labels that share a ``label_key``."""
    groups: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        groups.setdefault(label_key(name), []).append(name)
    return [group for group in groups.values() if len(group) > 1]


def warn_alike_labels(names: Iterable[str], where: str, stacklevel: int = 3) -> None:
    """Labels that look like one label spelled twice become separate classes: say so."""
    alike = alike_labels(names)
    if alike:
        shown = "; ".join(" / ".join(repr(n) for n in group) for group in alike[:5])
        warnings.warn(
            f"{where}: labels that differ only by case, spaces or '_' are separate classes: "
            f"{shown}. Spell each label one way if they are one class.",
            stacklevel=stacklevel + 1,
        )


def label_text(value) -> str:
    """A label value as the class's name: the one rule for values that are not strings.
    ``true``/``false`` are lower case (JSON's spelling), a whole number is written without
    ``.0`` (``1`` and ``1.0`` are one class, as ``true`` and ``"true"`` are)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
