"""A run's folder: checked before any work, and written only through ``RunFolder.writing``,
so that everything in it is recorded as ours and starting over removes only what the
previous run wrote."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..paths import check_output_dir, recording_writes, written_entries
from .checkpointing import STATE_FILE, sorted_checkpoints


class RunFolder:
    """``start_over`` (overwrite_output_dir): the previous run's entries are removed just
    before the first write of this one, so an early failure leaves the old run intact."""

    def __init__(self, path: Path, *, start_over: bool) -> None:
        self.path = Path(path)
        self._previous = written_entries(self.path) if start_over else set()

    @contextlib.contextmanager
    def writing(self, folder: Path | None = None):
        """Every write into the run goes through here: what appears is recorded as ours (so a
        later overwrite may replace it); the first write into the run's own folder removes
        the previous run's entries, and only those."""
        folder = Path(folder or self.path)
        if self._previous and folder.resolve() == self.path.resolve():
            for name in sorted(self._previous):
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
            self._previous = set()
        with recording_writes(folder):
            yield folder


def check_run_output_dir(args, reads: list[str] = ()) -> None:
    """Before any work: a run's folder is new or empty, holds a run to resume, or (with
    ``overwrite_output_dir``) holds only what fewshot-nlp wrote; never the model being read,
    the current folder or one above it."""
    out = Path(args.output_dir)
    if not args.resume_from_checkpoint:
        if out.is_dir() and any(out.iterdir()) and not args.overwrite_output_dir:
            what = "a run" if sorted_checkpoints(out) or (out / STATE_FILE).exists() else "files"
            raise ConfigError(
                f"output_dir {out} already holds {what}. Pass --resume_from_checkpoint true to "
                "continue a run, --overwrite_output_dir to start over there (only folders "
                "fewshot-nlp wrote), or another output_dir."
            )
        check_output_dir(out, overwrite=True, flag="output_dir", reads=reads)
    elif out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out} is a file; give the run's folder.")
