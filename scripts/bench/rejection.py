"""Out-of-scope rejection benchmark (issue 19): CLINC150, all 150 classes from the fixed 5-
and 10-shot files, scored on the in-scope test file plus the 1,000 out-of-scope test queries.

Every threshold is chosen on the few-shot file alone (k-fold over its shots, at most 3 points
of held-out in-scope accuracy; `fewshot_nlp.out_of_scope`); the test files are only scored.
Rows: `maml` (the model's adaptation, exported with the rejection label and scored through
its own outputs), `maml-base` (the same on the encoder before meta-training), and the
baselines on the base encoder: `logreg` (top probability) and `prototype` (cosine to the
nearest class mean). Resumable: each row is appended to OUTPUT_DIR/rejection.jsonl.

    python scripts/bench/rejection.py --data_dir ../shared/data --model runs/meta_value/names-lora
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

SHOTS = ("5", "10")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, bench_parser, publish  # noqa: E402

START, END = "<!-- rejection:start -->", "<!-- rejection:end -->"


def run(args) -> list[dict]:
    from fewshot_nlp import TaskSource
    from fewshot_nlp.data.files import read_texts
    from fewshot_nlp.evaluation import MethodRunner
    from fewshot_nlp.evaluation.out_of_scope import evaluate_out_of_scope

    results = Results(Path(args.output_dir) / "rejection.jsonl")
    root = Path(args.data_dir) / "clinc150"
    test = TaskSource.from_files(root / "test.jsonl", name="clinc150")
    outside = read_texts(root / "oos" / "test.jsonl")
    model = MethodRunner(args.model, cache_features=True)
    for shots in args.shots:
        todo = [m for m in args.methods if f"{shots}/{m}" not in results]
        if not todo:
            continue
        train = TaskSource.from_files(root / "fewshot" / f"train_{shots}.jsonl", name="train")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method in todo:
                row = evaluate_out_of_scope(model, train, test, outside, methods=[method])[0]
                results.add(f"{shots}/{method}", **row, shots=shots, summary=summary(row))
    return list(results.rows.values())


def summary(row: dict) -> str:
    return (
        f"in-scope {100 * row['in_scope_accuracy']:.2f} (without rejection "
        f"{100 * row['in_scope_accuracy_without_rejection']:.2f}), oos recall "
        f"{100 * row['oos_recall']:.2f}, AUROC {row['auroc']:.4f}"
    )


def report(rows: list[dict], model: str) -> str:
    lines = [
        START,
        f"Model: `{model}`. CLINC150 test: 4,500 in-scope queries (150 classes) + 1,000 "
        "out-of-scope queries; thresholds from the few-shot file only.",
        "",
        "| shots | method | in-scope acc. | without rejection | cost | oos recall | oos precision "
        "| AUROC | FPR@95%TPR | ECE (before) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (int(r["shots"]), r["method"])):
        ece = row.get("calibration_error")
        before = row.get("calibration_error_uncalibrated")
        ece_text = (
            "-"
            if ece is None
            else f"{ece:.3f}" + (f" ({before:.3f})" if before is not None else "")
        )
        cost = 100 * (row["in_scope_accuracy_without_rejection"] - row["in_scope_accuracy"])
        lines.append(
            f"| {row['shots']} | {row['method']} | {100 * row['in_scope_accuracy']:.2f} | "
            f"{100 * row['in_scope_accuracy_without_rejection']:.2f} | {cost:.2f} | "
            f"{100 * row['oos_recall']:.2f} | {100 * row['oos_precision']:.2f} | "
            f"{row['auroc']:.4f} | {100 * row['fpr_at_95_tpr']:.2f} | {ece_text} |"
        )
    return "\n".join([*lines, END])


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", required=True, help="A (meta-trained) model folder.")
    parser.add_argument("--output_dir", default="runs/rejection", help="Results go here.")
    parser.add_argument("--shots", nargs="+", default=list(SHOTS), choices=SHOTS)
    parser.add_argument(
        "--methods", nargs="+", default=["maml", "maml-base", "logreg", "prototype"]
    )
    parser.add_argument("--benchmarks_file", default=None, help="Write the table there too.")
    args = parser.parse_args()
    rows = run(args)
    text = report(rows, args.model)
    publish(text, args.benchmarks_file, START, END)


if __name__ == "__main__":
    sys.exit(main())
