"""Every command's argument parsing: dataclass fields as flags (``--x_y`` and ``--x-y``, via
``HfArgumentParser``) and as keys of an optional ``--config`` YAML; mistakes named with the
closest valid name."""

from __future__ import annotations

import difflib
import typing
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

    argv = _bare_booleans(_check_list_values(list(argv), types, prog), types)
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


BOOLEAN_WORDS = {"yes", "no", "true", "false", "t", "f", "y", "n", "1", "0"}


def _flags_of(types: tuple, kind: type) -> set[str]:
    """Both spellings of every flag whose field is a ``kind`` (list or bool)."""
    found = set()
    for cls in types:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            hint = hints.get(f.name)
            options = typing.get_args(hint) if typing.get_origin(hint) is not list else (hint,)
            if any(h is kind or typing.get_origin(h) is kind for h in (hint, *options)):
                found |= {f"--{f.name}", f"--{f.name.replace('_', '-')}"}
    return found


def _check_list_values(argv: list[str], types: tuple, prog: str) -> list[str]:
    """``--k_shot 1,5`` (the spelling of earlier releases) named with the one that works,
    instead of argparse's "invalid int value: '1,5'"."""
    lists = _flags_of(types, list)
    for i, item in enumerate(argv):
        flag, _, value = item.partition("=")
        if flag not in lists:
            continue
        values = [value] if value else []
        for following in argv[i + 1 :]:
            if following.startswith("--"):
                break
            values.append(following)
        for value in values:
            plain = not any(c.isspace() for c in value) and not Path(value).exists()
            if "," in value and plain:
                spaced = " ".join(v for v in value.split(",") if v)
                raise ConfigError(
                    f"{flag} {value}: separate the values with spaces, not commas: "
                    f"{flag} {spaced}. See `{prog} --help`."
                )
    return argv


def _bare_booleans(argv: list[str], types: tuple) -> list[str]:
    """A true/false flag followed by a word that is no truth value (``--trust_remote_code
    "some text"``) is the bare flag; the word is the next argument, not the flag's value."""
    booleans = _flags_of(types, bool)
    out = []
    for i, item in enumerate(argv):
        out.append(item)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (
            item in booleans
            and following is not None
            and not following.startswith("-")
            and following.lower() not in BOOLEAN_WORDS
        ):
            out[-1] = f"{item}=true"
    return out


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
