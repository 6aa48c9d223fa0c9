"""Follow the model through one command: how many places a reader visits, in how many
modules, and how often the path climbs back into a module it already left.

    python scripts/follow_model.py -- adapt --model minilm --train_file few.jsonl --output_dir out

Every call of a function of the package that receives the model (an argument that is a
``FewShotModel``, a ``MAML`` or a torch module) is recorded in order. A *stay* is a run of
consecutive such calls in one module (reading on in the same file); a *climb back* is a stay
in a module the path had already left. Inner-loop arithmetic that does not take the model
(tensors, heads) is not followed. Prints the three counts and the path, one stay per line.
"""

from __future__ import annotations

import argparse
import sys


def follow(argv: list[str]) -> list[tuple[str, str]]:
    """``(module, function)`` of every package call that receives the model, in order."""
    import torch

    from fewshot_nlp.commands import main
    from fewshot_nlp.meta.maml import MAML
    from fewshot_nlp.meta.model import FewShotModel

    kinds = (FewShotModel, MAML, torch.nn.Module)
    calls: list[tuple[str, str]] = []

    def profile(frame, event, _arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("fewshot_nlp"):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(n), kinds) for n in names):
            calls.append((module, code.co_name))

    sys.setprofile(profile)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
    if code != 0:
        raise SystemExit(f"the command failed (exit {code})")
    return calls


def stays(calls: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Consecutive calls in one module, merged."""
    merged: list[tuple[str, list[str]]] = []
    for module, function in calls:
        if merged and merged[-1][0] == module:
            merged[-1][1].append(function)
        else:
            merged.append((module, [function]))
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="fewshot-nlp's arguments")
    args = parser.parse_args()
    command = [a for a in args.command if a != "--"]
    path = stays(follow(command))
    seen: set[str] = set()
    climbs = 0
    for module, functions in path:
        back = module in seen
        climbs += back
        seen.add(module)
        mark = "  (back)" if back else ""
        print(f"{module}: {', '.join(dict.fromkeys(functions))}{mark}")
    print(f"\n{len(path)} stays in {len(seen)} modules, {climbs} climbs back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
