"""Every command's argument parsing: dataclass fields as flags (``--x_y`` and ``--x-y``, via
``HfArgumentParser``) and as keys of an optional ``--config`` YAML; mistakes named with the
closest valid name."""

from __future__ import annotations

import difflib
from dataclasses import field, fields
from pathlib import Path

from .errors import ConfigError


def help_field(text: str, **kwargs):
    """A dataclass field with its ``--help`` text (``metadata`` keys go to argparse too)."""
    metadata = {"help": text, **kwargs.pop("metadata", {})}
    return field(metadata=metadata, **kwargs)


def parse_dataclasses(
    types: tuple,
    argv: list[str],
    *,
    prog: str,
    description: str,
    config: str | None = None,
    positional: str | None = None,
) -> tuple:
    """Every command's arguments: dataclass fields as flags (both spellings, via
    ``HfArgumentParser``) and as keys of an optional ``--config`` YAML that flags override.
    ``positional``: help of trailing free arguments, returned last as a list."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(types, prog=prog, description=description)
    parser.add_argument(
        "--config", default=config, help="YAML file of argument defaults; flags override it."
    )
    if positional:
        parser.add_argument("positional", nargs="*", metavar="TEXT", help=positional)
    known, _ = parser.parse_known_args(argv)
    if known.config:
        values = load_yaml_config(known.config)
        check_config_keys(values, types, known.config)
        parser.set_defaults(**values)
    *parsed, rest, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        raise ConfigError(_unknown_flags_message(types, unknown, prog))
    return (*parsed, rest.positional) if positional else tuple(parsed)


def _unknown_flags_message(types: tuple, unknown: list[str], prog: str) -> str:
    """A mistyped flag named with the closest real one (argparse's own message names none)."""
    names = [f.name for cls in types for f in fields(cls)] + ["config", "help"]
    flags = [f"--{n}" for n in names] + [f"--{n.replace('_', '-')}" for n in names]
    parts = []
    for item in unknown:
        if not item.startswith("-"):
            parts.append(f"unexpected argument {item!r}")
            continue
        name = item.split("=", 1)[0]
        close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
        parts.append(f"unknown flag {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return "; ".join(parts) + f". See `{prog} --help` for every flag."


def check_config_keys(values: dict, dataclass_types, where: str) -> None:
    """Unknown keys are errors naming the closest valid key."""
    valid = {f.name for cls in dataclass_types for f in fields(cls)} | {"config"}
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown key {key!r} in {where}.{hint}")


def load_yaml_config(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of argument names to values.")
    return values
