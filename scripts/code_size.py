"""The package's size against issue 30's bars: total lines, lines per top folder, files over
450 lines and functions over 60 lines (docstrings counted).

    python scripts/code_size.py
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "fewshot_nlp"


def main() -> None:
    files = sorted(ROOT.rglob("*.py"))
    lines = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in files}
    folders = Counter()
    for path, count in lines.items():
        parts = path.relative_to(ROOT).parts
        folders[parts[0] if len(parts) > 1 else "(top)"] += count
    print(f"package: {sum(lines.values())} lines in {len(files)} files")
    for folder, count in sorted(folders.items()):
        print(f"  {folder}: {count}")
    long_files = [(p, n) for p, n in lines.items() if n > 450]
    print(f"files over 450 lines: {len(long_files)}")
    for path, count in long_files:
        print(f"  {path.relative_to(ROOT.parent)}: {count}")
    long_functions = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > 60:
                    long_functions.append((size, f"{path.relative_to(ROOT.parent)}:{node.name}"))
    print(f"functions over 60 lines: {len(long_functions)}")
    for size, name in sorted(long_functions, reverse=True):
        print(f"  {name}: {size}")


if __name__ == "__main__":
    main()
