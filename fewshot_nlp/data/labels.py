"""Label names as text: what an encoder reads of a label, and when two spellings are one."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Protocol

from ..errors import DataError


class LabelledTexts(Protocol):
    """What the label checks read of a ``sources.TaskSource``."""

    name: str
    texts: list[str]
    labels: list[str]
    label_names: list[str]
    label_index: dict[str, list[int]]


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
    if isinstance(value, (list, tuple)):
        raise DataError(
            f"A label is a list ({value!r}): that is multi-label data. The command line reads "
            "such files itself (rows with 'labels'); in Python use "
            "fewshot_nlp.multilabel.adapt_multilabel."
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def preview(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check_label_hygiene(source: LabelledTexts) -> None:
    """Labels that look like typos of each other become separate classes silently: refuse
    blank labels, warn about labels equal but for case or spaces, and about a text given
    several labels."""
    blank = [label for label in source.label_names if not label.strip()]
    if blank:
        rows = sum(len(source.label_index[label]) for label in blank)
        raise DataError(
            f"Source {source.name!r}: {rows} example(s) have a blank label ({blank!r}). Give "
            "them a label or drop them."
        )
    warn_alike_labels(source.label_names, f"Source {source.name!r}")
    seen: dict[str, set[str]] = {}
    for text, label in zip(source.texts, source.labels):
        seen.setdefault(text, set()).add(label)
    clashes = {text: labels for text, labels in seen.items() if len(labels) > 1}
    if clashes:
        text, labels = next(iter(clashes.items()))
        warnings.warn(
            f"Source {source.name!r}: {len(clashes)} text(s) carry more than one label, e.g. "
            f"{text[:60]!r} under {sorted(labels)}. A classifier gives each text one label.",
            stacklevel=3,
        )


def label_set(source: LabelledTexts | None, labels) -> list[str]:
    """``labels`` as the classes of an adaptation: unique, at least 2, covering every label of
    ``source``; a class without examples needs a descriptive name (it is all there is)."""
    names = [str(label) for label in labels]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"labels repeats {preview(repeated)}: give each class once.")
    if len(names) < 2:
        raise DataError(f"labels has {len(names)} class: a classifier needs at least 2.")
    warn_alike_labels(names, "labels")
    have = set(source.label_index) if source is not None else set()
    unknown = sorted(have - set(names))
    if unknown:
        raise DataError(
            f"train_data has labels that are not in labels: {preview(unknown)}. Add them to "
            "labels, or leave labels out to take the classes from the examples."
        )
    unreadable = [n for n in names if n not in have and not is_descriptive_label(n)]
    if unreadable:
        raise DataError(
            f"Labels {preview(unreadable)} have neither examples nor a name that says what "
            "they mean, so nothing can classify them: give them examples, or name them in "
            "words (e.g. 'card_arrival' instead of '3' or 'LABEL_3')."
        )
    return names
