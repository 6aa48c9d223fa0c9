"""The package's shape: arrows go down only (no import cycles, counting imports inside
functions and under TYPE_CHECKING), and no module reads another's private names."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles():
    graph = import_graph()
    assert graph.cycles(graph.module_graph()) == []


def test_the_check_finds_a_cycle_hidden_in_a_function():
    graph = import_graph()
    edges = graph.module_graph()
    assert "fewshot_nlp.data.episodes" in edges["fewshot_nlp.data.collate"]
    edges["fewshot_nlp.data.episodes"] = edges["fewshot_nlp.data.episodes"] | {
        "fewshot_nlp.data.collate"
    }
    assert graph.cycles(edges) == [["fewshot_nlp.data.collate", "fewshot_nlp.data.episodes"]]


def test_function_level_and_type_checking_imports_count(tmp_path, monkeypatch):
    graph = import_graph()
    package = tmp_path / "fewshot_nlp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n"
    )
    monkeypatch.setattr(graph, "ROOT", package)
    assert graph.cycles(graph.module_graph()) == [["fewshot_nlp.a", "fewshot_nlp.b"]]


def test_no_private_name_imported_across_modules():
    assert import_graph().private_imports() == []


def test_the_public_names_are_the_functions_not_their_modules():
    """``from fewshot_nlp import export`` gave the module ``fewshot_nlp.export``: a lazily
    imported submodule of the same name shadowed the function."""
    code = (
        "from fewshot_nlp import AdaptationArguments, adapt, export, grow; "
        "import fewshot_nlp; "
        "print(all(callable(f) for f in (adapt, export, grow, fewshot_nlp.export)))"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("wing", ["multilabel", "deploy", "unlabeled"])
def test_wings_stand_beside_the_core(wing):
    """A feature wing is imported only by the commands and by itself: the core (meta,
    modeling, data, evaluation, the classifier, export) knows nothing of it."""
    edges = import_graph().module_graph()
    wing = f"fewshot_nlp.{wing}"
    users = sorted(
        module
        for module, targets in edges.items()
        if any(t == wing or t.startswith(wing + ".") for t in targets)
        and not module.startswith((wing, "fewshot_nlp.commands"))
    )
    assert users == []
