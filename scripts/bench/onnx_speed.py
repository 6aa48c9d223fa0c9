"""ONNX against the PyTorch export (issue 32), side by side in one run on this machine.

A banking77 classifier (the run given by --model adapted to the fixed 5-shot file, exported,
then `export-onnx --quantize int8`) scores:
- exactness: banking77's whole test file (3,080 texts): fp32 logits against PyTorch (largest
  difference, same label), int8 labels against fp32, and the accuracy of each;
- speed: texts per second over 5,000 texts (banking77 test + train texts), batch sizes 1 and
  32, the PyTorch export (transformers' model, texts batched by token length, as `predict`
  does) against ONNX fp32 and int8 (onnxruntime, the same batching); each in its own process,
  with its peak resident memory; file sizes.
Resumable: each row is appended to OUTPUT_DIR/onnx_speed.jsonl.

    python scripts/bench/onnx_speed.py --data_dir ../shared/data \\
        --model runs/meta_value/names-lora --benchmarks_file BENCHMARKS.md
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, bench_parser, publish  # noqa: E402

BACKENDS = ("pytorch", "onnx-fp32", "onnx-int8")
BATCHES = (1, 32)
TEXTS = 5000
START, END = "<!-- onnx:start -->", "<!-- onnx:end -->"


def classifier_folder(args) -> Path:
    """The banking77 5-shot classifier exported with its ONNX files (made once)."""
    folder = Path(args.output_dir) / "banking77-classifier"
    if (folder / "onnx" / "model_quantized.onnx").is_file():
        return folder
    from transformers import AutoTokenizer

    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.deploy import OnnxArguments, export_onnx
    from fewshot_nlp.export import export

    train = Path(args.data_dir) / "banking77" / "fewshot" / "train_5.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = adapt(args.model, [str(train)])
    export(classifier, AutoTokenizer.from_pretrained(args.model), folder, overwrite=True)
    export_onnx(folder, OnnxArguments(quantize="int8", overwrite=True))
    return folder


def texts(data_dir: str, count: int | None) -> tuple[list[str], list[str]]:
    root = Path(data_dir) / "banking77"
    rows = [json.loads(line) for line in (root / "test.jsonl").open(encoding="utf-8")]
    if count and count > len(rows):
        rows += [json.loads(line) for line in (root / "train.jsonl").open(encoding="utf-8")]
    rows = rows[:count] if count else rows
    return [r["text"] for r in rows], [r["label"] for r in rows]


def scorer(backend: str, folder: Path, batch_size: int):
    """A function from texts to their logits (PyTorch or ONNX), in input order."""
    if backend == "pytorch":
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from fewshot_nlp.modeling.scoring import text_logits

        torch.set_num_threads(2)
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return lambda batch: text_logits(model, tokenizer, batch, batch_size=batch_size).numpy()
    from fewshot_nlp.deploy import OnnxClassifier

    runner = OnnxClassifier(folder, backend.split("-")[1], threads=2)
    return lambda batch: runner.logits(batch, batch_size=batch_size)


def child(backend: str, folder: str, data_dir: str, batch_size: int, count: int | None, out: str):
    """One backend in this process: its logits (count None: the test file) or its speed."""
    import numpy as np

    batch, _ = texts(data_dir, count)
    run = scorer(backend, Path(folder), batch_size)
    if count:  # speed: warm up on a few texts first
        run(batch[:64])
    start = time.perf_counter()
    logits = run(batch)
    seconds = time.perf_counter() - start
    if not count:
        np.save(out, logits)
    peak = peak_megabytes()
    print(json.dumps({"seconds": seconds, "peak_mb": peak}))


def peak_megabytes() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent through fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(*argv) -> dict:
    command = [sys.executable, __file__, "--child", *map(str, argv)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exactness(args, folder: Path, results: Results) -> None:
    if "exact" in results:
        return
    import numpy as np

    _, labels = texts(args.data_dir, None)
    out = Path(args.output_dir)
    logits = {}
    for backend in BACKENDS:
        file = out / f"logits-{backend}.npy"
        in_child(backend, folder, args.data_dir, 32, 0, file)
        logits[backend] = np.load(file)
    names = json.loads((folder / "config.json").read_text())["id2label"]
    predicted = {b: [names[str(i)] for i in v.argmax(-1)] for b, v in logits.items()}
    accuracy = {
        b: float(np.mean([p == y for p, y in zip(v, labels)])) for b, v in predicted.items()
    }
    fp32, torch_ = logits["onnx-fp32"], logits["pytorch"]
    results.add(
        "exact",
        texts=len(labels),
        fp32_max_abs_diff=float(np.abs(fp32 - torch_).max()),
        fp32_same_label=float(np.mean(fp32.argmax(-1) == torch_.argmax(-1))),
        int8_same_label=float(np.mean(logits["onnx-int8"].argmax(-1) == fp32.argmax(-1))),
        accuracy=accuracy,
        summary=f"fp32 max diff {float(np.abs(fp32 - torch_).max()):.1e}",
    )


def speed(args, folder: Path, results: Results) -> None:
    for batch_size in BATCHES:
        for backend in BACKENDS:
            key = f"speed/{batch_size}/{backend}"
            if key in results:
                continue
            row = in_child(backend, folder, args.data_dir, batch_size, TEXTS, "-")
            row["texts_per_second"] = TEXTS / row["seconds"]
            results.add(key, **row, summary=f"{row['texts_per_second']:.1f} texts/s")


def report(results: Results, folder: Path) -> str:
    sizes = {
        "pytorch": sum(p.stat().st_size for p in folder.glob("*.safetensors")),
        "onnx-fp32": (folder / "onnx" / "model.onnx").stat().st_size,
        "onnx-int8": (folder / "onnx" / "model_quantized.onnx").stat().st_size,
    }
    lines = [
        START,
        "| backend | file MB | "
        + " | ".join(f"batch {b}: texts/s | × PyTorch | peak MB" for b in BATCHES)
        + " |",
        "|---|---|" + "---|---|---|" * len(BATCHES),
    ]
    for backend in BACKENDS:
        cells = [backend, f"{sizes[backend] / 2**20:.1f}"]
        for b in BATCHES:
            row, base = (
                results.rows.get(f"speed/{b}/{backend}"),
                results.rows.get(f"speed/{b}/pytorch"),
            )
            if row and base:
                ratio = row["texts_per_second"] / base["texts_per_second"]
                cells += [f"{row['texts_per_second']:.1f}", f"{ratio:.2f}", f"{row['peak_mb']:.0f}"]
            else:
                cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    exact = results.rows.get("exact")
    if exact:
        acc = exact["accuracy"]
        lines += [
            "",
            f"Exactness on banking77's test file ({exact['texts']} texts): ONNX fp32 logits "
            f"within {exact['fp32_max_abs_diff']:.1e} of PyTorch's, the same label on "
            f"{100 * exact['fp32_same_label']:.2f} %; int8 the same label as fp32 on "
            f"{100 * exact['int8_same_label']:.2f} %. Accuracy: PyTorch "
            f"{100 * acc['pytorch']:.2f}, fp32 {100 * acc['onnx-fp32']:.2f}, int8 "
            f"{100 * acc['onnx-int8']:.2f}.",
        ]
    lines.append(
        f"\n{TEXTS} texts per speed row (banking77 test, then train texts), 2 threads, one "
        "process per row (peak resident memory of that process), texts batched by token length "
        "in every backend; model files: safetensors against onnx/*.onnx."
    )
    return "\n".join([*lines, END])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        backend, folder, data_dir, batch_size, count, out = sys.argv[2:8]
        child(backend, folder, data_dir, int(batch_size), int(count) or None, out)
        return
    parser = bench_parser(__doc__)
    parser.add_argument("--model", default="runs/meta_value/names-lora", help="A run to adapt.")
    parser.add_argument("--output_dir", default="runs/onnx_speed", help="Results go here.")
    parser.add_argument("--benchmarks_file", default=None, help="Write the table there too.")
    args = parser.parse_args()
    results = Results(Path(args.output_dir) / "onnx_speed.jsonl")
    folder = classifier_folder(args)
    exactness(args, folder, results)
    speed(args, folder, results)
    publish(report(results, folder), args.benchmarks_file, START, END)


if __name__ == "__main__":
    main()
