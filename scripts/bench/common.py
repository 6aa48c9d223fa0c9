"""What the benchmark scripts share: their command line's start, the recipes they read from
``configs/bench/<name>.yaml``, the resumable results file, one meta-training run, and writing
a table into BENCHMARKS.md between its markers."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "bench"


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose --help is the script's docstring, with --data_dir."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="The shared data directory.")
    return parser


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: where a bench runs (cpu, cuda, cuda:1, ...); the default is the CPU."""
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")


def bench_config(name: str) -> dict:
    """The recipes and sizes of one bench: ``configs/bench/<name>.yaml``."""
    import yaml

    with (CONFIGS / f"{name}.yaml").open(encoding="utf-8") as file:
        return yaml.safe_load(file)


class Results:
    """A JSONL file of measured rows, one per key, read back so that a rerun skips them: every
    bench resumes where it was stopped."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, key: str, **row) -> dict:
        row["key"] = key
        self.rows[key] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")
        print(f"[result] {key}: {json.dumps(row.get('summary', ''))}", flush=True)
        return row


def dataset_names(data_dir: str) -> list[str]:
    """The single-label datasets of ``data_dir`` (a multi-label one, whose rows carry
    ``labels``, is no meta-training source)."""
    from fewshot_nlp.data.files import first_record_has

    folders = sorted(Path(data_dir).iterdir())
    return [
        f.name
        for f in folders
        if (f / "train.jsonl").is_file() and first_record_has(f / "train.jsonl", "label")
    ]


def mean_pooling_base(out: Path) -> Path:
    """The packaged MiniLM in the mean-pooling class, saved once: the not-meta-trained row."""
    folder = out / "base-mean"
    if (folder / "config.json").is_file():
        return folder
    from fewshot_nlp.modeling.pretrained import load_classifier

    model, tokenizer = load_classifier("minilm", "eager", pooling="mean")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def meta_train(folder: Path, values: dict, sources, evals, results: Results, key: str) -> Path:
    """One meta-training run of the mean-pooling MiniLM into ``folder``, recorded as ``key``
    (skipped when it is there already; a run with kept checkpoints resumes from the last)."""
    if key in results and (folder / "fewshot_nlp.json").is_file():
        return folder
    from fewshot_nlp.meta.arguments import MetaTrainingArguments
    from fewshot_nlp.meta.trainer import MetaTrainer
    from fewshot_nlp.modeling.pretrained import load_classifier

    resume = values.get("save_steps") and any(folder.glob("checkpoint-*"))
    args = MetaTrainingArguments(
        output_dir=str(folder),
        overwrite_output_dir=True,
        resume_from_checkpoint="true" if resume else None,
        **values,
    )
    model, tokenizer = load_classifier("minilm", "eager", pooling="mean")
    start = time.perf_counter()
    state = MetaTrainer(model, args, sources, evals, tokenizer=tokenizer).train()
    seconds = time.perf_counter() - start
    curve = [(h["step"], h["eval_accuracy"]) for h in state.log_history if "eval_accuracy" in h]
    best = state.best_model_checkpoint
    results.add(
        key,
        seconds=seconds,
        steps=state.global_step,
        sources=[s.name for s in sources],
        recipe=values,
        curve=curve,
        best_checkpoint=Path(best).name if best else None,
        summary=f"{seconds / 60:.1f} min, curve {curve}, best {best and Path(best).name}",
    )
    return folder


def write_section(text: str, path: Path, start: str, end: str) -> None:
    """Replace what lies between ``start`` and ``end`` in ``path`` by ``text`` (which
    carries the markers itself); a file that does not exist yet is created with it."""
    content = path.read_text(encoding="utf-8") if path.is_file() else ""
    if start in content and end in content:
        head, rest = content.split(start, 1)
        content = head + text + rest.split(end, 1)[1]
    else:
        content = (content.rstrip() + "\n\n" if content.strip() else "") + text + "\n"
    path.write_text(content, encoding="utf-8")


def publish(text: str, benchmarks_file: str | None, start: str, end: str) -> None:
    """Print the table, and write it into ``benchmarks_file`` when one is given."""
    print(text)
    if benchmarks_file:
        write_section(text, Path(benchmarks_file), start, end)
