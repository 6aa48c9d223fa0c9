"""What the benchmark scripts share: their command line's start, and writing a table into
BENCHMARKS.md between its markers (appended at the end the first time)."""

from __future__ import annotations

import argparse
from pathlib import Path


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose --help is the script's docstring, with --data_dir."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="The shared data directory.")
    return parser


def write_section(text: str, path: Path, start: str, end: str) -> None:
    """Replace what lies between ``start`` and ``end`` in ``path`` by ``text`` (which
    carries the markers itself); a file that does not exist yet is created with it."""
    content = path.read_text(encoding="utf-8") if path.is_file() else ""
    if start in content and end in content:
        head, rest = content.split(start, 1)
        content = head + text + rest.split(end, 1)[1]
    else:
        content = (content.rstrip() + "\n\n" if content.strip() else "") + text + "\n"
    path.write_text(content, encoding="utf-8")


def publish(text: str, benchmarks_file: str | None, start: str, end: str) -> None:
    """Print the table, and write it into ``benchmarks_file`` when one is given."""
    print(text)
    if benchmarks_file:
        write_section(text, Path(benchmarks_file), start, end)
