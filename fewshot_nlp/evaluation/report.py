"""What an evaluation writes: a one-screen table, a plot, strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..paths import atomic_file


def format_table(evaluations: list[dict]) -> str:
    """A one-screen table: method x shots, accuracy and macro-F1 with CI."""
    lines = [
        f"{'method':<11}{'shots':>6}{'accuracy':>18}{'macro-F1':>18}{'episodes':>10}{'s/adapt':>9}"
    ]
    for entry in evaluations:
        for k, r in entry["results"].items():

            def cell(m):
                ci = m["ci95"]
                return f"{100 * m['mean']:.2f}" + (f" ± {100 * ci:.2f}" if ci is not None else "")

            lines.append(
                f"{entry['method']:<11}{k:>6}{cell(r['accuracy']):>18}"
                f"{cell(r['f1_macro']):>18}{r['episodes']:>10}{r['adapt_seconds']:>9.2f}"
            )
    return "\n".join(lines)


def plot_accuracy(evaluations: list[dict], path: str | Path) -> Path:
    """Accuracy against shots per method, with 95% CI bars, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    for entry in evaluations:
        ks = sorted(entry["results"], key=int)
        means = [100 * entry["results"][k]["accuracy"]["mean"] for k in ks]
        cis = [100 * (entry["results"][k]["accuracy"]["ci95"] or 0) for k in ks]
        axis.errorbar(
            [int(k) for k in ks], means, yerr=cis, marker="o", capsize=3, label=entry["method"]
        )
    axis.set_xlabel("shots per class")
    axis.set_ylabel("query accuracy (%)")
    axis.set_title(evaluations[0]["dataset"] if evaluations else "")
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)
    return path


def write_results(evaluations: list[dict], path: str | Path) -> Path:
    """Strict JSON: what is undefined (a NaN, a CI of one episode) is written as null."""
    path = Path(path)
    text = json.dumps(_json_safe(evaluations), indent=2, allow_nan=False)
    with atomic_file(path) as handle:
        handle.write(text + "\n")
    return path


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def n_way_text(n_way) -> str | int:
    """n_way as the CLI writes it: 5, '2-10' or 'all'."""
    return f"{n_way[0]}-{n_way[1]}" if isinstance(n_way, (tuple, list)) else n_way
