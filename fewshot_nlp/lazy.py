"""Names a package exports but imports on first use, so that ``import fewshot_nlp`` (and the
command line, which installs its signal handlers first) loads no torch."""

from __future__ import annotations

import importlib
import sys


def lazy_attributes(package: str, where: dict[str, str]):
    """A module ``__getattr__`` that imports ``name`` from ``where[name]`` (a module relative
    to ``package``) when it is first asked for."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        # Importing ``package.export`` binds the submodule to the package's name ``export``;
        # the exported function must win, also for ``from package import export``.
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
