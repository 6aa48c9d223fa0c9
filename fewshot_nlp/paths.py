"""The paths a command reads and writes: checked before any work, written so that nothing of
the user's is lost.

A wrong ``--output_dir`` found after ten minutes of adaptation is ten minutes lost; the checks
here run first and say what is wrong and how to fix it. Every folder fewshot-nlp writes lists
the entries it wrote in ``fewshot_nlp_written.json``; ``overwrite`` replaces a folder only when
everything in it is on that list, so a user's own files are never removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import interrupts
from .errors import ConfigError

MODEL_FILES = ("config.json", "adapter_config.json")
WRITTEN_FILE = "fewshot_nlp_written.json"
# An output folder being written holds this file (the writer's pid) until the result is
# renamed into place: a second writer is refused instead of replacing the first's result.
RESERVED_FILE = ".fewshot_nlp_writing"


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


# ---------------------------------------------------------------- what we wrote
def written_entries(folder: str | os.PathLike) -> set[str]:
    """The names in ``folder`` that fewshot-nlp wrote (empty for a folder it never wrote)."""
    try:
        names = json.loads((Path(folder) / WRITTEN_FILE).read_text(encoding="utf-8"))["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {name for name in names if isinstance(name, str)}


def record_written(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Add ``names`` (entries of ``folder``) to the folder's list of what we wrote."""
    folder = Path(folder)
    entries = sorted((written_entries(folder) | set(names)) - {WRITTEN_FILE})
    text = json.dumps({"entries": entries}, indent=1) + "\n"
    (folder / WRITTEN_FILE).write_text(text, encoding="utf-8")


@contextlib.contextmanager
def recording_writes(folder: str | os.PathLike):
    """Whatever appears in ``folder`` during the block is recorded as ours (the folder is
    checked to hold nothing foreign before, so nothing of the user's can be among it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in folder.iterdir()}
    try:
        yield folder
    finally:
        new = {p.name for p in folder.iterdir()} - before
        if new:
            record_written(folder, new)


def foreign_entries(folder: str | os.PathLike) -> list[str]:
    """Entries of ``folder`` that fewshot-nlp did not write."""
    ours = written_entries(folder) | {WRITTEN_FILE, RESERVED_FILE}
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in ours)


def check_replaceable(folder: Path, flag: str) -> None:
    """``overwrite`` may replace ``folder`` only if every entry in it is ours."""
    foreign = foreign_entries(folder)
    if not foreign:
        return
    if not (folder / WRITTEN_FILE).is_file():
        why = "it was not written by fewshot-nlp (no fewshot_nlp_written.json)"
    else:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        why = f"it holds files fewshot-nlp did not write: {shown}"
    raise ConfigError(
        f"{flag} {folder}: --overwrite replaces only folders fewshot-nlp wrote, and {why}. "
        f"Choose another {flag.lstrip('-')}, or move those files out first."
    )


# ---------------------------------------------------------------- reservations
@dataclass(frozen=True)
class _Reservation:
    placeholder: Path  # the empty file, or the folder's RESERVED_FILE
    device: int
    inode: int
    created_folder: bool


_reserved: dict[Path, _Reservation] = {}  # resolved output path -> what this process holds


def is_reserved(path: str | os.PathLike) -> bool:
    """Whether this process holds ``path`` (see ``check_output_dir(reserve=True)``)."""
    return Path(path).resolve() in _reserved


def _create_exclusively(path: Path, content: str = "") -> os.stat_result:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    return os.stat(path)


def _reserve_file(path: Path, flag: str) -> None:
    """An empty file at ``path``, created exclusively: of two writers, the second fails."""
    try:
        made = _create_exclusively(path)
    except FileExistsError:
        raise ConfigError(
            f"{flag} {path} was created by someone else just now (another fewshot-nlp run "
            "writing the same file?). Choose another file name, or wait for it."
        ) from None
    _reserved[path.resolve()] = _Reservation(path, made.st_dev, made.st_ino, False)


def _writer_of(folder: Path) -> int | None:
    """The pid of a live process writing ``folder`` (None when none is)."""
    try:
        pid = int((folder / RESERVED_FILE).read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None  # no reservation, or its writer is gone (a stale reservation is ours)
    return pid


def _busy(path: Path, flag: str, pid) -> ConfigError:
    return ConfigError(
        f"{flag} {path} is being written by another fewshot-nlp process (pid {pid}): wait "
        f"for it, or choose another {flag.lstrip('-')}."
    )


def _reserve_folder(path: Path, flag: str) -> None:
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    if _writer_of(path) is None:  # left by a writer that is gone: no one holds it
        with contextlib.suppress(FileNotFoundError):
            (path / RESERVED_FILE).unlink()
    try:
        made = _create_exclusively(path / RESERVED_FILE, str(os.getpid()))
    except FileExistsError:
        raise _busy(path, flag, _writer_of(path) or "unknown") from None
    _reserved[path.resolve()] = _Reservation(
        path / RESERVED_FILE, made.st_dev, made.st_ino, created
    )


def _done(path: Path) -> None:
    """The result is in place: the reservation was replaced with it."""
    _reserved.pop(Path(path).resolve(), None)


def release_reservations(paths: Iterable[str | os.PathLike] | None = None) -> None:
    """Give back what this process reserved and never filled (all, or ``paths``): an
    interrupted or failed command leaves no placeholder behind."""
    keys = list(_reserved) if paths is None else [Path(p).resolve() for p in paths]
    for key in keys:
        held = _reserved.pop(key, None)
        if held is None:
            continue
        with contextlib.suppress(OSError):
            now = os.stat(held.placeholder)
            if (now.st_dev, now.st_ino) == (held.device, held.inode):
                os.unlink(held.placeholder)
            if held.created_folder:
                key.rmdir()  # only if empty


# ---------------------------------------------------------------- checks
def _existing(reads: Iterable[str | os.PathLike]):
    """``(as given, resolved)`` for each path being read that exists."""
    for read in reads:
        source = Path(read).expanduser()
        if source.exists():
            yield read, source.resolve()


def _refuse_dangerous(path: Path, flag: str, reads: Iterable[str | os.PathLike]) -> None:
    """Never write over the current folder, a folder above it, or a model being read."""
    target = path.resolve()
    here = Path.cwd().resolve()
    if here == target or here.is_relative_to(target):
        where = "the current folder" if here == target else "a folder above the current one"
        raise ConfigError(
            f"{flag} {path} is {where} ({target}): give a new folder for the output, e.g. "
            f"{flag} {Path(path) / 'output'}."
        )
    for read, source in _existing(reads):
        if source == target or source.is_relative_to(target):
            raise ConfigError(
                f"{flag} {path} {'is' if source == target else 'contains'} the model being "
                f"read ({read}): write the output to another folder."
            )
        if target.is_relative_to(source) and target.is_dir() and any(target.iterdir()):
            raise ConfigError(
                f"{flag} {path} is a non-empty folder inside the model being read ({read}): "
                "write the output to another folder."
            )


def check_output_dir(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    flag: str = "--output_dir",
    reads: Iterable[str | os.PathLike] = (),
    reserve: bool = False,
) -> Path:
    """A folder that can be written, that holds nothing unless ``overwrite``, and that
    ``overwrite`` may replace: not the current folder or one above it, not the model being
    read (``reads``) or one containing it, nothing in it that fewshot-nlp did not write.
    ``reserve``: also claim it now (``RESERVED_FILE``), so that a second writer is refused
    until ``atomic_folder_write`` puts the result in place or ``release_reservations``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder (it is created if missing).")
    _refuse_dangerous(path, flag, reads)
    ours = is_reserved(path)
    if path.is_dir() and not ours:
        writer = _writer_of(path)
        if writer is not None and writer != os.getpid():
            raise _busy(path, flag, writer)
    if path.is_dir() and not ours and any(path.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{path} exists and is not empty: pass overwrite=True (CLI: --overwrite) or "
                f"choose another {flag.lstrip('-')}."
            )
        check_replaceable(path, flag)
    _check_writable(path, flag)
    if reserve and not ours:
        _reserve_folder(path, flag)
    return path


def check_output_file(
    path: str | os.PathLike,
    *,
    flag: str,
    overwrite: bool = False,
    reads: Iterable[str | os.PathLike] = (),
    reserve: bool = False,
) -> Path:
    """A file path that can be written: its folder is created now (not after the work), an
    existing file is replaced only with ``overwrite``, and no model being read is touched.
    ``reserve``: a new file is claimed now (created empty, exclusively): a second writer is
    refused, and ``atomic_file`` renames the result over it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name, e.g. {path}/results.json.")
    if is_reserved(path):
        return path
    if path.exists() and not overwrite:
        raise ConfigError(
            f"{flag} {path} already exists: pass --overwrite to replace it, or choose another "
            "file name."
        )
    for read, source in _existing(reads):
        if source.is_dir() and path.resolve().is_relative_to(source):
            raise ConfigError(
                f"{flag} {path} is inside the model being read ({read}): write it elsewhere."
            )
    _check_writable(path.parent, flag)
    path.parent.mkdir(parents=True, exist_ok=True)
    if reserve and not path.exists():
        _reserve_file(path, flag)
    return path


# ---------------------------------------------------------------- writing
def _umask() -> int:
    mask = os.umask(0)  # the only way to read it: set, then put back
    os.umask(mask)
    return mask


def readable_as_umask_says(folder: Path, names: Iterable[str] | None = None) -> None:
    """Temp folders are created 0700 and some writers (transformers' shard writer among
    them) make files 0600; what we write is meant to be shared, so it gets the modes a plain
    ``mkdir`` / ``open`` would have given. ``names``: only these entries of ``folder``."""
    mask = _umask()
    if names is not None:
        for name in names:
            entry = Path(folder) / name
            if entry.is_file() and not entry.is_symlink():
                os.chmod(entry, 0o666 & ~mask)
            elif entry.is_dir() and not entry.is_symlink():
                readable_as_umask_says(entry)
        return
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def atomic_folder_write(final: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a whole folder into a unique temporary sibling, then rename it into place: a
    crash never leaves half a folder, and a folder it replaces must be ours (checked again at
    the moment of replacing, in case files were added while the work ran)."""
    final = Path(final).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    old = None
    try:
        write(tmp)
        record_written(tmp, (p.name for p in tmp.iterdir()))
        readable_as_umask_says(tmp)
        interrupts.check()  # an interrupted command leaves no result in place
        if final.exists():
            check_replaceable(final, "output_dir")
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(tmp, final)
        _done(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old / final.name, final)  # put the previous folder back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return final


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w"):
    """An open handle on a unique temporary sibling of ``path``, renamed onto ``path`` when
    the block ends normally and removed otherwise: the file is whole or absent, and two
    processes writing the same path never share a temporary file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())
        interrupts.check()
        os.replace(tmp, path)
        _done(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def check_remote_code(path: str, trust: bool, flag: str = "--model") -> None:
    """A model folder whose config names its own code (``auto_map``) runs only when trusted:
    said before anything is loaded, never asked at a prompt."""
    config = Path(path) / "config.json"
    if trust or not config.is_file():
        return
    try:
        auto_map = json.loads(config.read_text(encoding="utf-8")).get("auto_map")
    except (OSError, ValueError):
        return  # an unreadable config is reported by the loader itself
    if auto_map:
        raise ConfigError(
            f"{flag} {path} runs Python code of its own ({config} maps "
            f"{', '.join(sorted(auto_map))} to files in the folder). Nothing was run. Pass "
            "--trust_remote_code if you trust where it comes from."
        )


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
