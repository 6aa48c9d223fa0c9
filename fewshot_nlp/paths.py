"""Checks on the paths a command reads and writes, made before any model is loaded or trained.

A wrong ``--output_dir`` found after ten minutes of adaptation is ten minutes lost; these
run first and say what is wrong and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

MODEL_FILES = ("config.json", "adapter_config.json")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(path: Path, flag: str) -> None:
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise ConfigError(f"{flag} {path}: {anchor} is a file, so nothing can be written below it.")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {anchor} is not writable. Choose another location.")


def check_output_dir(path: str | os.PathLike, *, overwrite: bool, flag: str = "--output_dir"):
    """A folder that can be written, and that holds nothing unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder (it is created if missing).")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            f"{path} exists and is not empty: pass overwrite=True (CLI: --overwrite) or "
            f"choose another {flag.lstrip('-')}."
        )
    _check_writable(path, flag)
    return path


def check_output_file(path: str | os.PathLike, *, flag: str) -> Path:
    """A file path whose folder exists (or can be made) and can be written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name, e.g. {path}/results.json.")
    _check_writable(path, flag)
    return path


def check_model_path(name: str) -> str:
    """A local model folder must hold a ``config.json`` (or a PEFT ``adapter_config.json``);
    anything else is a clear error naming the folders below it that look like models."""
    path = Path(name).expanduser()
    if path.is_file():
        raise ConfigError(f"--model {name} is a file; give the model's folder (with config.json).")
    if path.is_dir():
        if any((path / f).is_file() for f in MODEL_FILES):
            return name
        found = sorted(
            str(p.parent)
            for pattern in ("*/config.json", "*/*/config.json")
            for p in path.glob(pattern)
        )
        hint = f" Folders below it that look like models: {', '.join(found[:5])}." if found else ""
        raise ConfigError(
            f"--model {name} is not a model folder: it has no config.json. A model folder holds "
            f"config.json, the weights (model.safetensors) and the tokenizer files.{hint}"
        )
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", ""):
        raise ConfigError(f"--model {name}: no such folder.")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ConfigError(
            f"--model {name}: no such local folder, and the Hub is off (HF_HUB_OFFLINE is set). "
            "Give a local model folder."
        )
    return name
