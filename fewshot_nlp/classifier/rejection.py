""" "None of these": a rejection label chosen on the support set, calibrated scores.

The exported classifier gets one more output whose logit is the threshold, so a plain
``pipeline()`` predicts the rejection label exactly when every class scores below it. The
threshold and a temperature are fitted on held-out logits of the support set (k-fold over
the shots, ``cross_validated_logits``): the logits the export itself computes, never a test
file's. Where the export's features scale with the padded length (mean pooling), the extra
output scales the same way (``modeling.rejection``), so a text is decided the same alone and
in a padded batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.labels import label_key, label_name_text
from ..errors import ConfigError, DataError
from ..modeling.lora import is_peft
from ..modeling.normalized_pooling import normalize_pooled_features
from ..modeling.pooling import is_mean_pooling
from ..modeling.rejection import add_rejection_output
from .arguments import DEFAULT_MAX_IN_SCOPE_LOSS

CALIBRATION_BINS = 15
# Held-out scores come from heads fitted on (folds - 1) / folds of the shots, so they run
# lower than the final head's: more folds, less of that bias (5 shots: leave one out).
REJECTION_FOLDS = 5


@dataclass
class RejectionFit:
    """How the rejection label was set, for the model card and the adaptation record.

    ``threshold`` is on the calibrated logits (the class logits divided by ``temperature``):
    a text whose best class scores below it gets ``label``. The accuracies are held-out
    support accuracies (cross-validation), rejected in-scope examples counted as errors.
    """

    label: str
    threshold: float
    temperature: float
    rule: str
    max_in_scope_loss: float | None
    folds: int
    in_scope_accuracy: float | None = None
    in_scope_accuracy_with_rejection: float | None = None
    unknown_examples: int = 0
    unknown_recall: float | None = None
    calibration_error_before: float | None = None
    calibration_error_after: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_rejection_label(unknown_label: str, labels) -> None:
    """The rejection label must be a new name: not a class, nor a class but for case,
    spaces or '_' (``label_key``)."""
    same = [str(n) for n in labels or () if label_key(n) == label_key(unknown_label)]
    if same:
        how = (
            "is already one of the classes"
            if unknown_label in same
            else f"is the class {same[0]!r} but for case, spaces or '_'"
        )
        raise ConfigError(
            f"unknown_label {unknown_label!r} {how}: the rejection label must be a new name "
            "(e.g. 'out_of_scope')."
        )


def check_rejection_support(label_counts: dict[str, int], unknown_label: str) -> None:
    """The rejection threshold is read off held-out examples (k-fold over the shots), so
    every class needs 2. With 1 (or 0) there is nothing to hold out, and a threshold set on
    the examples themselves rejected almost every valid text: refused, before any work."""
    short = sorted(name for name, count in label_counts.items() if count < 2)
    if short:
        shown = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        raise ConfigError(
            f"unknown_label {unknown_label!r} needs at least 2 examples of every class, to "
            f"choose its threshold on held-out examples; {shown} "
            f"{'has' if len(short) == 1 else 'have'} fewer. Give 2 or more examples per "
            "class, or adapt without unknown_label (CLI: drop --unknown_label)."
        )


def rejection_examples(args, names, source, text_column, label_column) -> list[str] | None:
    """The rejection request (``args``: ``AdaptationArguments``) checked against the classes
    and the examples, before any work; the out-of-scope texts, if any."""
    if args.unknown_label is None:
        return None
    check_rejection_label(args.unknown_label, names)
    have = source.label_index if source is not None else {}
    check_rejection_support({n: len(have.get(n, ())) for n in names}, args.unknown_label)
    if source is not None and source.text_pairs is not None:
        raise ConfigError(
            "unknown_label rejects texts that fit no class; it is not offered for text pairs "
            "(each pair always has one of the labels)."
        )
    if args.unknown_data is None:
        return None
    return unknown_texts(args.unknown_data, names, text_column, label_column)


def unknown_texts(data, label_names, text_column: str = "text", label_column: str = "label"):
    """Texts of no class (a file or a list of texts). A row whose label is one of the
    classes is refused: out-of-scope examples must not carry an in-scope label."""
    from pathlib import Path

    from ..data.files import read_texts

    if isinstance(data, (str, Path)):
        path = Path(data)
        texts = read_texts(path, text_column)
        labels = _optional_column(path, label_column)
    else:
        texts, labels = [str(t) for t in data], []
    clashes = sorted(set(labels) & set(map(str, label_names)))
    if clashes:
        raise DataError(
            f"{data}: {len(clashes)} label(s) of the out-of-scope examples are classes of the "
            f"classifier ({', '.join(clashes[:5])}). Out-of-scope examples belong to no class: "
            "drop those rows or their labels."
        )
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"{data}: no out-of-scope texts (the file or list is empty).")
    return texts


def _optional_column(path, column: str) -> list[str]:
    """The values of ``column`` when the file's rows have it (none in a .txt file)."""
    from ..data.files import read_texts

    if path.suffix.lower() == ".txt":
        return []
    try:
        return read_texts(path, column)
    except DataError:  # no such column: texts without labels
        return []


# ------------------------------------------------------------------------- calibration
def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises the held-out negative log-likelihood.

    The NLL of ``logits / T`` is unimodal in ``log T``: a golden-section search over
    ``T`` in [0.01, 100] finds it without a learning rate to tune.
    """
    z, y = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    low, high = math.log(0.01), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return math.exp((low + high) / 2)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """ECE of the top-class probability: sum over equal-width confidence bins of
    ``|accuracy - confidence|`` weighted by the bin's share of examples."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    confidence = probabilities.max(-1)
    correct = probabilities.argmax(-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            error += members.mean() * gap
    return float(error)


# ------------------------------------------------------------------------- the threshold
def choose_threshold(
    scores: np.ndarray,
    correct: np.ndarray,
    max_in_scope_loss: float | None,
    unknown_scores: np.ndarray | None = None,
) -> float:
    """A threshold on the best class's score (texts below it are rejected).

    Without out-of-scope examples: the highest threshold that rejects at most
    ``max_in_scope_loss`` points of correctly classified held-out examples. With them: the
    threshold that maximises held-out in-scope accuracy (rejections count as errors) plus
    out-of-scope recall, among those within ``max_in_scope_loss`` when it is given.
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    right = np.sort(scores[correct])
    if not len(right):
        return float(scores.min())
    if unknown_scores is None:
        allowed = int(math.floor((max_in_scope_loss or 0.0) / 100 * len(scores) + 1e-9))
        allowed = min(allowed, len(right) - 1)
        if allowed == 0:
            return float(right[0])
        return float((right[allowed - 1] + right[allowed]) / 2)
    unknown = np.sort(np.asarray(unknown_scores, dtype=np.float64))
    everything = np.unique(np.concatenate([scores, unknown]))
    candidates = np.concatenate(
        [[everything[0]], (everything[1:] + everything[:-1]) / 2, [everything[-1] + 1e-6]]
    )
    # a text is rejected when its score < threshold
    kept_right = len(right) - np.searchsorted(right, candidates, side="left")
    accuracy = kept_right / len(scores)
    recall = np.searchsorted(unknown, candidates, side="left") / len(unknown)
    value = accuracy + recall
    if max_in_scope_loss is not None:
        lost = (len(right) - kept_right) / len(scores)
        value = np.where(lost <= max_in_scope_loss / 100 + 1e-12, value, -np.inf)
    return float(candidates[int(np.argmax(value))])


def fit_rejection(
    held_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    label: str,
    max_in_scope_loss: float | None,
    folds: int,
    unknown_logits: list[torch.Tensor] | None = None,
) -> RejectionFit:
    """Temperature and threshold from the held-out support logits (and, when given, the
    out-of-scope examples' logits under every fold's head). Every class has >= 2 examples
    (``check_rejection_support``), so there are always held-out logits."""
    keep = held_logits.isfinite().all(-1)
    z, y = held_logits[keep].double(), labels.cpu()[keep]
    temperature = fit_temperature(z, y)
    scores = (z / temperature).max(-1).values.numpy()
    correct = (z.argmax(-1) == y).numpy()
    unknown = None
    if unknown_logits:
        unknown = (torch.cat(unknown_logits).double() / temperature).max(-1).values.numpy()
    loss = max_in_scope_loss
    if loss is None and unknown is None:
        loss = DEFAULT_MAX_IN_SCOPE_LOSS
    threshold = choose_threshold(scores, correct, loss, unknown)
    accepted = scores >= threshold
    probabilities = torch.softmax(z, -1).numpy()
    calibrated = torch.softmax(z / temperature, -1).numpy()
    return RejectionFit(
        label=label,
        threshold=threshold,
        temperature=temperature,
        rule="out-of-scope examples" if unknown is not None else "support cross-validation",
        max_in_scope_loss=loss,
        folds=folds,
        in_scope_accuracy=float(correct.mean()),
        in_scope_accuracy_with_rejection=float((correct & accepted).mean()),
        unknown_examples=0 if unknown is None else len(unknown) // max(folds, 1),
        unknown_recall=None if unknown is None else float((unknown < threshold).mean()),
        calibration_error_before=expected_calibration_error(probabilities, y.numpy()),
        calibration_error_after=expected_calibration_error(calibrated, y.numpy()),
    )


def fit_on_support(
    model,
    classifier,
    metrics: dict,
    texts: list[str],
    label_ids: list[int],
    names: list[str],
    *,
    label: str,
    max_in_scope_loss: float | None,
    unknown: list[str] | None = None,
    normalized: bool = False,
) -> RejectionFit:
    """``fit_rejection`` for ``model`` (a ``FewShotModel``) exported as ``classifier``:
    held-out logits of a k-fold run at the chosen step count (normalised when the export
    reads normalised features), out-of-scope texts under every fold's weights; without
    folds, nothing: ``check_rejection_support`` refused the request before the work."""
    from ..meta.cross_validation import cross_validated_logits, cv_folds

    n_way = len(names)
    labels = torch.as_tensor(label_ids, dtype=torch.long, device=model.device)
    folds = cv_folds(model.config, labels, n_way, REJECTION_FOLDS)
    steps = metrics["inner_steps"]
    name_inputs = None
    if model.config.label_names != "never":
        encoded = model.collator.encode_label_names(names)
        name_inputs = {k: v.to(model.device) for k, v in encoded.items()}
    held_at, others_at = cross_validated_logits(
        model.maml,
        model.encode(texts),
        labels,
        n_way,
        name_inputs,
        [steps],
        model.encode(unknown) if unknown else None,
        folds,
        normalized=normalized,
    )
    return fit_rejection(
        held_at[steps],
        labels,
        label=label,
        max_in_scope_loss=max_in_scope_loss,
        folds=folds,
        unknown_logits=others_at[steps],
    )


def attach_rejection(run, classifier, metrics, texts, label_ids, names, args, unknown):
    """Give ``classifier`` (adapted from ``run``, a ``FewShotModel``) its rejection label.
    A mean-pooling export with a normalised head is first made to read the normalised
    embedding (``normalized_pooling``), so the threshold reads what the head was fitted on,
    not the feature's norm."""
    head = run.maml.episode_head(run.config.adaptation_head_init)
    normalized = is_mean_pooling(classifier) and head.normalized and not is_peft(classifier)
    probe_texts = texts or [label_name_text(n) for n in names]
    if normalized:
        weight = classifier.get_submodule(run.maml.head_name).weight.detach()
        features = run.features(probe_texts)
        normalize_pooled_features(classifier, weight * metrics["feature_norm"], features)
    fit = fit_on_support(
        run,
        classifier,
        metrics,
        texts,
        label_ids,
        names,
        label=args.unknown_label,
        max_in_scope_loss=args.max_in_scope_loss,
        unknown=unknown,
        normalized=normalized,
    )
    probe = run.encode(probe_texts[:16])
    probe.pop("token_type_ids", None)
    add_rejection_output(classifier, fit.label, fit.threshold, fit.temperature, probe)
    return fit
