"""A run's checkpoints: one registry of stateful objects, their files, and their integrity.

Objects with ``state_dict`` / ``load_state_dict`` (optimizer, scheduler, episode sampler)
are registered once under a name, as accelerate's ``register_for_checkpointing`` does; each
is saved as ``NAME.safetensors`` (its tensors) beside ``NAME.json`` (the rest, with a
reference where a tensor was): no pickles. A checkpoint is whole when its manifest (the
SHA-256 of every file, written last) matches.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
RNG_FILE = "rng_state.safetensors"
MANIFEST_FILE = "checkpoint_manifest.json"
TENSOR, TUPLE, ITEMS = "__tensor__", "__tuple__", "__items__"


class CheckpointRegistry:
    """Named stateful objects saved and restored together."""

    def __init__(self) -> None:
        self._objects: dict[str, object] = {}

    def register(self, name: str, obj) -> None:
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(f"{name}: {type(obj).__name__} has no state_dict/load_state_dict.")
        self._objects[name] = obj

    def save(self, folder: Path) -> None:
        for name, obj in self._objects.items():
            save_state(obj.state_dict(), folder, name)

    def load(self, folder: Path) -> None:
        for name, obj in self._objects.items():
            obj.load_state_dict(load_state(folder, name))


def save_state(state, folder: Path, name: str) -> None:
    """``state`` as ``name.json`` plus ``name.safetensors`` when it holds tensors."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, tensors)
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(encoded), encoding="utf-8")


def load_state(folder: Path, name: str):
    """What ``save_state`` wrote (or, from runs before it, ``name.pt`` read as weights only)."""
    text = folder / f"{name}.json"
    if not text.is_file() and (folder / f"{name}.pt").is_file():
        return torch.load(folder / f"{name}.pt", weights_only=True)
    tensors_file = folder / f"{name}.safetensors"
    tensors = load_file(str(tensors_file)) if tensors_file.is_file() else {}
    return _decode(json.loads(text.read_text(encoding="utf-8")), tensors)


def _encode(value, tensors: dict):
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous()
        return {TENSOR: key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {ITEMS: [[k, _encode(v, tensors)] for k, v in value.items()]}  # int keys
    if isinstance(value, tuple):
        return {TUPLE: [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    return value


def _decode(value, tensors: dict):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if TENSOR in value:
        return tensors[value[TENSOR]]
    if TUPLE in value:
        return tuple(_decode(v, tensors) for v in value[TUPLE])
    if ITEMS in value:
        return {k: _decode(v, tensors) for k, v in value[ITEMS]}
    return {k: _decode(v, tensors) for k, v in value.items()}


# ---------------------------------------------------------------- random state
def process_rng_states(accelerator) -> dict[str, torch.Tensor]:
    """``{"cpu_RANK": ..., "cuda_RANK": ...}`` for every process (gathered on all)."""
    own = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and accelerator.device.type == "cuda":
        own["cuda"] = torch.cuda.get_rng_state(accelerator.device)
    states = [own]
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        states = gather_object([own])
    return {f"{k}_{rank}": v for rank, state in enumerate(states) for k, v in state.items()}


def restore_rng(accelerator, folder: Path) -> None:
    """This process's random state from a checkpoint (process 0's, with a warning, when the
    process count changed)."""
    saved = load_file(str(folder / RNG_FILE))
    rank = accelerator.process_index
    cpu = saved.get(f"cpu_{rank}")
    if cpu is None:  # another process count (or a checkpoint that kept one state)
        cpu = saved.get("cpu_0", saved.get("cpu"))
        warnings.warn(
            f"{folder / RNG_FILE} holds no random state for process {rank}: it continues "
            "from process 0's. The run goes on, but not bit-identically to one that was "
            "never interrupted.",
            stacklevel=3,
        )
    torch.set_rng_state(cpu)
    cuda = saved.get(f"cuda_{rank}")
    if cuda is not None and accelerator.device.type == "cuda":
        torch.cuda.set_rng_state(cuda, accelerator.device)


# ---------------------------------------------------------------- the folders
def write_manifest(folder: Path) -> None:
    """SHA-256 of every file of a checkpoint, written last."""
    digests = {
        str(p.relative_to(folder)): _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(digests, indent=1), encoding="utf-8")


def manifest_problem(folder: Path) -> str | None:
    """What is wrong with a checkpoint's files, or None (checkpoints without a manifest, from
    earlier versions, are not checked here; loading them still is)."""
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        digests = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{manifest} is damaged"
    for name, digest in digests.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if _sha256(path) != digest:
            return f"{path} is damaged (its checksum differs from the one written with it)"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sorted_checkpoints(output_dir: Path) -> list[Path]:
    if not Path(output_dir).is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in Path(output_dir).iterdir()
        if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def prune_checkpoints(output_dir: Path, limit: int | None, keep: str | None) -> None:
    """Oldest first, down to ``limit`` checkpoints; ``keep`` (the best) is never removed."""
    if not limit:
        return
    checkpoints = sorted_checkpoints(output_dir)
    removable = [c for c in checkpoints if str(c) != keep]
    while len(checkpoints) > limit and removable:
        victim = removable.pop(0)
        shutil.rmtree(victim, ignore_errors=True)
        checkpoints.remove(victim)


def resume_checkpoint(output_dir: Path, spec, try_resume) -> None:
    """Resume by ``try_resume(folder)`` (which returns a problem or None). ``spec`` true: the
    newest intact checkpoint of ``output_dir`` (a damaged one is named, then skipped); a
    path: that checkpoint, or a clear error naming what is wrong with it."""
    from ..errors import ConfigError, TrainingError

    if str(spec).lower() != "true":
        path = Path(spec)
        if not (path / STATE_FILE).is_file():
            raise ConfigError(f"{path} is not a checkpoint folder (no {STATE_FILE}).")
        problem = manifest_problem(path) or try_resume(path)
        if problem:
            raise TrainingError(f"Cannot resume from {path}: {problem}")
        return
    checkpoints = sorted_checkpoints(output_dir)
    if not checkpoints:
        raise ConfigError(
            f"resume_from_checkpoint=true but {output_dir} has no checkpoint-* folder."
        )
    problems = []
    for folder in reversed(checkpoints):
        problem = manifest_problem(folder) or try_resume(folder)
        if problem is None:
            if problems:
                warnings.warn(
                    f"Resumed from {folder.name}, the newest intact checkpoint; skipped "
                    + "; ".join(problems),
                    stacklevel=4,
                )
            return
        problems.append(f"{folder.name} ({problem})")
    raise TrainingError(
        f"No checkpoint in {output_dir} can be resumed: {'; '.join(problems)}. "
        "Start over with --overwrite_output_dir."
    )


def run_fingerprint(maml) -> str:
    """What a checkpoint must match to be resumed: parameter names/shapes and adaptation."""
    shapes = [(n, tuple(p.shape)) for n, p in maml.named_parameters() if p.requires_grad]
    config = maml.config.to_dict()
    config.pop("step_checkpointing")  # memory, not numbers: a run may resume with either
    blob = json.dumps([shapes, config], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def state_json(state, fingerprint: str) -> str:
    """The trainer state a checkpoint resumes from, with what the run must match."""
    fields = ("global_step", "max_steps", "log_history", "best_metric", "best_model_checkpoint")
    clean = {k: getattr(state, k) for k in fields}
    return json.dumps(
        {"fingerprint": fingerprint, "state": clean},
        indent=2,
        default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x),
    )
