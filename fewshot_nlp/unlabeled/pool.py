"""Reading a pool of unlabeled texts: streamed line by line (a file larger than memory is
sampled, never loaded), blank and repeated texts dropped, texts that are also labelled
examples taken out; everything dropped is counted so that the user is told."""

from __future__ import annotations

import csv
import json
import os
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

SUFFIXES = (".txt", ".jsonl", ".csv")


@dataclass
class UnlabeledPool:
    """The texts an adaptation may read, and what reading them dropped."""

    texts: list[str]
    read: int  # texts in the input (blank ones included)
    blank: int = 0
    duplicates: int = 0
    labelled: int = 0  # texts that are also labelled examples
    sampled_from: int | None = None  # distinct texts before the cap, when it applied

    def __len__(self) -> int:
        return len(self.texts)

    def summary(self) -> str:
        """What was read and dropped, in one line (the card and the output say it)."""
        parts = [f"{len(self.texts)} unlabeled texts"]
        dropped = [
            f"{n} {what}"
            for n, what in (
                (self.blank, "blank"),
                (self.duplicates, "repeated"),
                (self.labelled, "also in the labelled examples"),
            )
            if n
        ]
        if dropped:
            parts.append(f"dropped {', '.join(dropped)}")
        if self.sampled_from is not None:
            parts.append(f"sampled from {self.sampled_from} distinct texts (max_unlabeled)")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "texts": len(self.texts),
            "read": self.read,
            "blank": self.blank,
            "duplicates": self.duplicates,
            "labelled": self.labelled,
            "sampled_from": self.sampled_from,
            "summary": self.summary(),
        }


def read_pool(
    data: str | os.PathLike | Sequence[str],
    *,
    labelled: Iterable[str] = (),
    max_unlabeled: int,
    text_column: str = "text",
    seed: int = 0,
    warn: bool = True,
) -> UnlabeledPool:
    """The pool from a file (.txt / .jsonl / .csv) or a list of texts. Over ``max_unlabeled``
    distinct texts it keeps a uniform sample (reservoir, seeded): a file sorted by class
    still gives every class its share."""
    labelled = set(labelled)
    stream = _file_texts(Path(data), text_column) if _is_path(data) else _list_texts(data)
    where = str(data) if _is_path(data) else "unlabeled"
    rng = random.Random(seed)
    seen: set[int] = set()
    kept: list[str] = []
    pool = UnlabeledPool(texts=kept, read=0)
    distinct = 0
    for text in stream:
        pool.read += 1
        if not text.strip():
            pool.blank += 1
            continue
        key = hash(text)
        if key in seen:
            pool.duplicates += 1
            continue
        seen.add(key)
        if text in labelled:
            pool.labelled += 1
            continue
        distinct += 1
        if len(kept) < max_unlabeled:
            kept.append(text)
        else:  # reservoir sampling: each distinct text kept with probability max / distinct
            slot = rng.randrange(distinct)
            if slot < max_unlabeled:
                kept[slot] = text
    if distinct > max_unlabeled:
        pool.sampled_from = distinct
    if not kept:
        raise DataError(
            f"{where}: no unlabeled text left to read ({pool.read} read; {pool.blank} blank, "
            f"{pool.duplicates} repeated, {pool.labelled} also in the labelled examples). "
            "Give texts of the kind you classify that are not the labelled examples."
        )
    if warn and (pool.labelled or pool.sampled_from):
        warnings.warn(f"{where}: {pool.summary()}.", stacklevel=3)
    return pool


def check_pool_file(path: str | os.PathLike) -> None:
    """The pool file's type and readability, before any model loads."""
    _file_texts(Path(path), "text")


def _is_path(data) -> bool:
    return isinstance(data, (str, os.PathLike))


def _list_texts(data) -> Iterator[str]:
    if isinstance(data, (bytes, dict)) or not isinstance(data, Iterable):
        raise DataError(
            f"unlabeled must be a file path or a list of texts, got {type(data).__name__}."
        )
    for i, text in enumerate(data):
        if not isinstance(text, str):
            raise DataError(
                f"unlabeled[{i}] is {type(text).__name__}, not a text: give strings only."
            )
        yield text


def _file_texts(path: Path, text_column: str) -> Iterator[str]:
    """The file's texts, one at a time (a stream: the file is never read whole)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix!r} for unlabeled texts; use "
            f"{', '.join(SUFFIXES)}."
        )
    if not path.is_file():
        raise DataError(f"Unlabeled file {path} does not exist.")
    if not os.access(path, os.R_OK):
        raise DataError(f"Unlabeled file {path} cannot be read: permission denied.")
    return _stream(path, suffix, text_column)


def _stream(path: Path, suffix: str, text_column: str) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if suffix == ".txt":
                for line in handle:
                    yield line.rstrip("\r\n")
            elif suffix == ".csv":
                reader = csv.DictReader(handle)
                if text_column not in (reader.fieldnames or []):
                    raise DataError(
                        f"{path}: no column {text_column!r} (columns: "
                        f"{reader.fieldnames or []}). Pass --text_column."
                    )
                for row in reader:
                    yield _text_of(row.get(text_column), path, reader.line_num, text_column)
            else:
                for lineno, line in enumerate(handle, start=1):
                    if line.strip():
                        yield _text_of(_json_line(line, path, lineno), path, lineno, text_column)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 ({error.reason} at byte {error.start} of a chunk). Convert it, "
            f"e.g. `iconv -f latin1 -t utf-8 {path}`."
        ) from None


def _json_line(line: str, path: Path, lineno: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}, line {lineno}: not valid JSON ({error.msg}). Each line must be one JSON "
            "object with a text field (or use a .txt file, one text per line)."
        ) from None


def _text_of(record, path: Path, lineno: int, text_column: str) -> str:
    value = record.get(text_column) if isinstance(record, dict) else None
    if isinstance(record, str):  # a JSON-lines file of bare strings
        value = record
    if not isinstance(value, str):
        raise DataError(
            f"{path}, line {lineno}: no text in field {text_column!r} (got "
            f"{type(value).__name__}). Pass --text_column to name the field with the text."
        )
    return value
