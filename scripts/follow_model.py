"""Follow the model through one command: how many places a reader visits, in how many
modules, and how often the path climbs back into a module it already left.

    python scripts/follow_model.py -- adapt --model minilm --train_file few.jsonl --output_dir out

Every call of a function of the package that receives the model (an argument that is a
``FewShotModel``, a ``MAML`` or a torch module) is recorded, one-line accessors (properties)
left out. A *stay* is a function a reader has to visit (each counted once); a *climb back
up* is a call that goes up the layers of ``../shared/DESIGN.md`` (commands > evaluation,
export, classifier > meta > modeling, data > the shared helpers): the code a reader was in
handing the model back to a layer above it. Prints the counts, the stays in order, and the
climbs.
"""

from __future__ import annotations

import argparse
import sys

LAYERS = {"commands": 5, "evaluation": 4, "export": 4, "classifier": 4, "meta": 3}
LAYERS.update(modeling=2, data=2)


def layer(module: str) -> int:
    """Where a module sits: its folder's layer; top-level modules are shared helpers (1),
    except ``export`` and the card, which serve the export (4)."""
    parts = module.split(".")
    if len(parts) > 2:
        return LAYERS.get(parts[1], 1)
    return 4 if parts[-1] in ("export", "model_card") else 1


def follow(argv: list[str]) -> list[tuple[str, str, str]]:
    """``(caller module, module, function)`` of every package call that receives the model,
    in order."""
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
        body = {line for _, _, line in code.co_lines() if line is not None}
        if len(body) <= 2:  # an accessor: nothing to read
            return
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(n), kinds) for n in names):
            caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
            calls.append((caller, module, code.co_name))

    sys.setprofile(profile)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
    if code != 0:
        raise SystemExit(f"the command failed (exit {code})")
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="fewshot-nlp's arguments")
    args = parser.parse_args()
    calls = follow([a for a in args.command if a != "--"])
    visited = list(dict.fromkeys((module, function) for _, module, function in calls))
    climbs = list(
        dict.fromkeys(
            (caller, module, function)
            for caller, module, function in calls
            if caller.startswith("fewshot_nlp") and layer(caller) < layer(module)
        )
    )
    for module, function in visited:
        print(f"{module}.{function}")
    for caller, module, function in climbs:
        print(f"climb back up: {caller} -> {module}.{function}")
    modules = {module for module, _ in visited}
    print(f"\n{len(visited)} stays in {len(modules)} modules, {len(climbs)} climbs back up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
