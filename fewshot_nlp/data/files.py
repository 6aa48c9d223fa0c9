"""Reading a user's files: texts to classify (.txt, .jsonl, .csv), checks that a file can be
read and says where it is broken, and ``datasets`` kept quiet while it reads local files."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError


@contextlib.contextmanager
def quiet_datasets():
    """Reading a local file is our work, not a download: ``datasets``' "Generating train
    split" bars and info logs are left out of every command's output."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    verbosity = datasets.utils.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.utils.logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


def read_texts(path: str | os.PathLike, text_column: str = "text") -> list[str]:
    """Texts to classify from ``.txt`` (one per line), ``.jsonl`` or ``.csv`` (a column)."""
    import csv

    path = Path(path)
    content = check_readable(path, needs="at least one text to classify")
    # Lines end at \n (or \r\n) only: U+2028, \x85 or \f inside a text are part of it, as
    # in the JSON strings predict writes.
    lines = [line.removesuffix("\r") for line in content.split("\n")]
    suffix = path.suffix.lower()
    if suffix == ".txt":  # one text per line, blank ones too (row i is line i); blank
        while lines and not lines[-1].strip():  # lines at the end are the file's end
            lines.pop()
        return lines
    if suffix == ".csv":
        # The csv module reads the whole file: a quoted field may span lines.
        reader = csv.DictReader(io.StringIO(content, newline=""))
        if text_column not in (reader.fieldnames or []):
            raise DataError(
                f"{path}: no column {text_column!r} (columns: {reader.fieldnames or []}). "
                "Pass --text_column."
            )
        texts = []
        for row in reader:
            if row[text_column] is None:  # a short row: the field is missing, not empty
                raise DataError(
                    f"{path}, line {reader.line_num}: the row has no {text_column!r} field "
                    f"(fewer fields than the header's {len(reader.fieldnames)})."
                )
            texts.append(row[text_column])
        return texts
    if suffix != ".jsonl":
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .txt, .jsonl or .csv.")
    texts = []
    for lineno, record in jsonl_records(path, lines):
        if not isinstance(record.get(text_column), str):
            raise DataError(
                f"{path}, line {lineno}: expected a text field {text_column!r} "
                "(pass --text_column to name another field)."
            )
        texts.append(record[text_column])
    return texts


def jsonl_records(path: Path, lines: Iterable[str]):
    """``(line number, object)`` per non-blank line; a clear error on the first bad one."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {lineno}: not valid JSON ({error.msg}): {line.strip()[:80]!r}. "
                "Each line must be one JSON object."
            ) from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {line!r}.")
        yield lineno, record


def check_readable(path: Path, needs: str = "at least one labelled example") -> str:
    """The file's text, once it is known to be non-empty UTF-8 without a byte-order mark."""
    if not path.is_file():
        raise DataError(f"File {path} does not exist.")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise DataError(
            f"File {path} cannot be read: permission denied. Check its permissions "
            f"(e.g. `chmod u+r {path}`) or run as a user who can read it."
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 (byte 0x{data[error.start]:02x}). Convert the file, "
            f"e.g. `iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{path.suffix}`."
        ) from None
    if text.startswith("\ufeff"):
        raise DataError(
            f"{path} starts with a byte-order mark (UTF-8 with BOM): save it as plain UTF-8, "
            f"e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' {path}`."
        )
    if not text.strip():
        raise DataError(f"File {path} is empty: it needs {needs}.")
    return text


def raise_on_bad_json_line(path: Path) -> None:
    if path.suffix.lower() != ".jsonl":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {error.lineno}: not valid JSON ({error.msg}). Fix that line."
            ) from error
        return
    with path.open(encoding="utf-8") as handle:
        for _ in jsonl_records(path, handle):
            pass


def first_record_has(path: Path, key: str) -> bool:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    return key in json.loads(line)
                except json.JSONDecodeError:
                    return False
    return False
