"""Multi-label examples: a text and the list of its labels (possibly empty: an explicit
"none of these" example, negative for every label). JSONL/JSON rows carry ``labels`` (a
list); a CSV column holds them joined by ``label_separator`` (e.g. ``play_music|get_weather``)."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.files import check_readable, first_record_has, jsonl_records
from ..data.labels import label_text, preview, warn_alike_labels
from ..errors import ConfigError, DataError


@dataclass
class MultiLabelData:
    """Texts, each with its (sorted, unique) labels; ``names``: every label, in order."""

    texts: list[str]
    labels: list[list[str]]
    names: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{len(self.texts)} texts but {len(self.labels)} label lists.")

    def matrix(self):
        """``(texts, labels)`` 0/1 matrix, columns in ``names`` order."""
        import torch

        index = {name: j for j, name in enumerate(self.names)}
        out = torch.zeros(len(self.texts), len(self.names))
        for i, labels in enumerate(self.labels):
            for label in labels:
                out[i, index[label]] = 1.0
        return out


def is_multilabel_file(
    paths: Sequence[str | os.PathLike],
    labels_column: str = "labels",
    label_separator: str | None = None,
) -> bool:
    """Whether training files are multi-label: a CSV read with ``label_separator``, or JSON
    rows with ``labels_column`` (the first row decides; ``read_multilabel`` checks them all)."""
    if label_separator is not None:
        return True
    return any(
        Path(p).suffix.lower() == ".jsonl"
        and Path(p).is_file()
        and first_record_has(Path(p), labels_column)
        for p in paths
    )


def read_multilabel(
    paths: Sequence[str | os.PathLike],
    *,
    text_column: str = "text",
    labels_column: str = "labels",
    label_column: str = "label",
    label_separator: str | None = None,
    labels: Sequence[str] | None = None,
    minimum: int = 2,
) -> MultiLabelData:
    """Every row of ``paths`` (.jsonl, .json, .csv); a file mixing ``label`` and ``labels``
    rows is refused with their line numbers."""
    texts: list[str] = []
    label_lists: list[list[str]] = []
    for path in paths:
        for text, values in _rows(
            Path(path), text_column, labels_column, label_column, label_separator
        ):
            texts.append(text)
            label_lists.append(values)
    where = ", ".join(map(str, paths)) or "--labels"
    pairs = list(zip(texts, label_lists))
    return multilabel_data(pairs, labels=labels, where=where, minimum=minimum)


def multilabel_data(
    pairs: Sequence,
    *,
    labels: Sequence[str] | None = None,
    where: str = "train_data",
    minimum: int = 2,
) -> MultiLabelData:
    """``(text, [labels])`` pairs (or a ``MultiLabelData``) checked: texts are strings, label
    lists are lists; ``labels`` (the label set, in order) must hold every label used."""
    if isinstance(pairs, MultiLabelData):
        labels = pairs.names if labels is None else labels
        pairs = list(zip(pairs.texts, pairs.labels))
    texts, label_lists = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise DataError(f"{where}, example {i}: expected (text, [labels]), got {pair!r}.")
        text, values = pair
        if not isinstance(text, str):
            raise DataError(f"{where}, example {i}: the text is {type(text).__name__}, not str.")
        if isinstance(values, str) or not isinstance(values, (list, tuple)):
            raise DataError(
                f"{where}, example {i}: labels must be a list (e.g. ['a', 'b'], or [] for "
                f"none of the labels), got {values!r}."
            )
        texts.append(text)
        label_lists.append(sorted({label_text(v) for v in values}))
    used = list(dict.fromkeys(v for values in label_lists for v in values))
    if labels is None:
        names = sorted(used)
    else:
        names = [label_text(n) for n in labels]
        if len(set(names)) != len(names):
            raise DataError(f"labels: {preview(names)} names a label twice.")
        unknown = sorted(set(used) - set(names))
        if unknown:
            raise DataError(
                f"{where}: labels {preview(unknown)} are not in --labels ({preview(names)}). "
                "Add them to --labels, or drop them from the file."
            )
    if len(names) < minimum:
        raise DataError(
            f"{where}: {len(names)} label(s) ({preview(names)}); a multi-label classifier needs "
            ">= 2. Give more labels (--labels) or examples of them."
        )
    if texts and all(not values for values in label_lists):
        raise DataError(f"{where}: every example has an empty label list; label some of them.")
    warn_alike_labels(names, where)
    missing = [n for n in names if n not in used]
    if missing:
        warnings.warn(
            f"{where}: {len(missing)} label(s) have no example ({preview(missing)}): they are "
            "classified from their names alone (0-shot).",
            stacklevel=3,
        )
    return MultiLabelData(texts, label_lists, names)


def _rows(path: Path, text_column, labels_column, label_column, separator):
    """``(text, labels)`` per row of one file."""
    content = check_readable(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if separator is None:
            raise ConfigError(
                f"{path}: a multi-label CSV needs --label_separator (e.g. '|'): the labels "
                f"column {labels_column!r} holds them joined by it."
            )
        reader = csv.DictReader(io.StringIO(content, newline=""))
        for column in (text_column, labels_column):
            if column not in (reader.fieldnames or []):
                raise DataError(f"{path}: no column {column!r} (columns: {reader.fieldnames}).")
        for row in reader:
            cell = (row[labels_column] or "").strip()
            yield row[text_column], [v.strip() for v in cell.split(separator) if v.strip()]
        return
    if suffix == ".json":
        try:
            records = list(enumerate(json.loads(content), start=1))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {error.lineno}: not valid JSON ({error.msg}).") from None
    elif suffix == ".jsonl":
        records = list(jsonl_records(path, content.split("\n")))
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .csv.")
    single = [n for n, r in records if isinstance(r, dict) and label_column in r]
    multi = [n for n, r in records if isinstance(r, dict) and labels_column in r]
    if single and multi:
        raise DataError(
            f"{path}: rows with {label_column!r} (lines {preview([str(n) for n in single], 5)}) "
            f"and rows with {labels_column!r} (lines {preview([str(n) for n in multi], 5)}). "
            f"A multi-label file gives every row a {labels_column!r} list (one label: [x])."
        )
    for n, record in records:
        if not isinstance(record, dict) or labels_column not in record:
            raise DataError(f"{path}, line {n}: expected a {labels_column!r} list in every row.")
        values = record[labels_column]
        if not isinstance(values, list):
            raise DataError(
                f"{path}, line {n}: {labels_column!r} is {values!r}; give a list, e.g. "
                '["play_music"], or [] for none of the labels.'
            )
        text = record.get(text_column)
        if not isinstance(text, str):
            raise DataError(f"{path}, line {n}: expected a text field {text_column!r}.")
        yield text, values
