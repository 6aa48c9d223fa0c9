"""`TaskSource`: one labelled text dataset, whatever its origin, with labels kept as names."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .files import (
    check_readable,
    first_record_has,
    quiet_datasets,
    raise_on_bad_json_line,
)
from .labels import check_label_hygiene, label_set, label_text, preview

DATA_DIR_ENV = "FEWSHOT_NLP_DATA"
_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv"}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else ``$FEWSHOT_NLP_DATA``."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not chosen:
        raise DataError(
            f"No data directory given: pass data_dir=... (CLI: --data_dir) or set {DATA_DIR_ENV}, "
            "e.g. to ../shared/data."
        )
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataError(f"Data directory {path} does not exist or is not a folder.")
    return path


@dataclass
class TaskSource:
    """One labelled text dataset: texts, optional text pairs, and string label names.

    Build it with :meth:`from_dataset`, :meth:`from_files` or :meth:`from_data_dir`. The
    label -> example-ids index is built once, at construction.
    """

    name: str
    texts: list[str]
    labels: list[str]
    text_pairs: list[str] | None = None
    label_index: dict[str, list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(
                f"Source {self.name!r}: {len(self.texts)} texts but {len(self.labels)} labels."
            )
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise DataError(
                f"Source {self.name!r}: {len(self.text_pairs)} text pairs for "
                f"{len(self.texts)} texts."
            )
        if not self.texts:
            raise DataError(f"Source {self.name!r} has no examples.")
        self.labels = [label_text(label) for label in self.labels]
        index: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            index.setdefault(label, []).append(i)
        self.label_index = index

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_names(self) -> list[str]:
        """Label names in order of first appearance."""
        return list(self.label_index)

    @property
    def is_pair_task(self) -> bool:
        return self.text_pairs is not None

    def restrict_to(self, labels: Iterable[str], *, where: str = "") -> TaskSource:
        """A new source with only these labels; every one of them must have examples."""
        wanted = [str(label) for label in labels]
        missing = [label for label in wanted if label not in self.label_index]
        if missing:
            raise DataError(
                f"Source {self.name!r}{where}: {len(missing)} requested label(s) have no examples "
                f"here: {preview(missing)}. The data has {len(self.label_index)} labels: "
                f"{preview(self.label_names)}. Pick the split or file that holds those labels."
            )
        return self._subset(sorted(i for label in wanted for i in self.label_index[label]))

    def _subset(self, keep: Sequence[int]) -> TaskSource:
        return TaskSource(
            name=self.name,
            texts=[self.texts[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in keep],
        )

    def without_blank_texts(self) -> TaskSource:
        """Empty or whitespace-only texts carry nothing to learn from: drop them with a
        warning, or fail when nothing else is left."""
        blank = [i for i, text in enumerate(self.texts) if not text.strip()]
        if not blank:
            return self
        if len(blank) == len(self.texts):
            raise DataError(
                f"Source {self.name!r}: all {len(blank)} texts are empty or whitespace. Check "
                "the text column (CLI: --text_column) and the file's contents."
            )
        warnings.warn(
            f"Source {self.name!r}: dropped {len(blank)} empty or whitespace-only text(s) "
            f"(rows {blank[:5]}{' ...' if len(blank) > 5 else ''}).",
            stacklevel=2,
        )
        return self._subset(sorted(set(range(len(self.texts))) - set(blank)))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataset(
        cls,
        dataset,
        *,
        name: str | None = None,
        split: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> TaskSource:
        """From a ``datasets.Dataset`` or ``DatasetDict``; ``ClassLabel`` ids become names."""
        import datasets

        if isinstance(dataset, datasets.DatasetDict):
            if split is None:
                if len(dataset) != 1:
                    raise DataError(
                        f"DatasetDict has splits {list(dataset)}: pass split=... to pick one."
                    )
                split = next(iter(dataset))
            if split not in dataset:
                raise DataError(f"Split {split!r} not in the DatasetDict; it has {list(dataset)}.")
            dataset = dataset[split]
        name = name or getattr(dataset.info, "dataset_name", None) or "dataset"
        check_columns(name, list(dataset.column_names), text_column, label_column, text_pair_column)
        raw_labels = dataset[label_column]
        missing = [i for i, label in enumerate(raw_labels) if label is None]
        if missing:
            raise DataError(
                f"Source {name!r}: column {label_column!r} has missing labels (null) at rows "
                f"{missing[:5]}. Label those rows or drop them."
            )
        feature = dataset.features[label_column]
        if isinstance(feature, datasets.ClassLabel):
            label_names = [feature.int2str(int(x)) for x in raw_labels]
        else:
            nested = [i for i, label in enumerate(raw_labels) if isinstance(label, (list, dict))]
            if nested:
                raise DataError(
                    f"Source {name!r}: column {label_column!r} holds lists or objects at rows "
                    f"{nested[:5]} (e.g. {raw_labels[nested[0]]!r}); a label is one name (a "
                    "string or a number). Give each row one label."
                )
            warn_unnamed_labels(raw_labels, f"Source {name!r}, column {label_column!r}")
            label_names = [label_text(x) for x in raw_labels]
        texts = dataset[text_column]
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise DataError(
                f"Source {name!r}: column {text_column!r} holds non-text values at rows "
                f"{bad[:5]} (e.g. {texts[bad[0]]!r}). Clean or drop those rows."
            )
        source = cls(
            name=name,
            texts=list(texts),
            labels=label_names,
            text_pairs=None if text_pair_column is None else list(dataset[text_pair_column]),
        )
        return source if labels is None else source.restrict_to(labels)

    @classmethod
    def from_files(
        cls,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        name: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> TaskSource:
        """From local ``.jsonl`` / ``.json`` / ``.csv`` files, read by ``datasets``' builders."""
        import datasets

        paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
        if not paths:
            raise DataError("No files given.")
        builders = set()
        for path in paths:
            check_readable(path)
            if path.suffix.lower() not in _FILE_BUILDERS:
                raise DataError(
                    f"{path}: unsupported file type {path.suffix!r}; use .jsonl, .json or .csv."
                )
            builders.add(_FILE_BUILDERS[path.suffix.lower()])
        if len(builders) > 1:
            raise DataError(f"Files {[str(p) for p in paths]} mix formats; give one format.")
        builder = builders.pop()
        try:
            with quiet_datasets():
                dataset = datasets.load_dataset(
                    builder, data_files=[str(p) for p in paths], split="train"
                )
        except Exception as error:  # find the offending line to say where the file is broken
            if builder == "json":
                for path in paths:
                    raise_on_bad_json_line(path)
            raise DataError(f"Could not read {[str(p) for p in paths]}: {error}") from error
        return cls.from_dataset(
            dataset,
            name=name or paths[0].parent.name or paths[0].stem,
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
            labels=labels,
        )

    @classmethod
    def from_spec(cls, spec: str, data_dir: str | os.PathLike | None = None) -> TaskSource:
        """``NAME[:SPLIT[:FOLD[:PART]]]``, e.g. ``banking77:train:01:test`` = the train-file
        examples of the classes in fold 01's meta-test part."""
        name, split, fold, part = (str(spec).split(":") + ["", "", ""])[:4]
        return cls.from_data_dir(
            name, data_dir, split=split or "train", fold=fold or None, part=part or None
        )

    @classmethod
    def from_data_dir(
        cls,
        name: str,
        data_dir: str | os.PathLike | None = None,
        *,
        split: str = "train",
        fold: str | None = None,
        part: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = "auto",
    ) -> TaskSource:
        """A dataset of the data directory by name: ``NAME/{split}.jsonl``.

        With ``part`` (``train`` / ``validation`` / ``test``) and a ``splits.json`` beside the
        data, only that class split's labels are kept: the held-out-class protocol.
        """
        root = resolve_data_dir(data_dir)
        folder = root / name
        if not folder.is_dir():
            available = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DataError(
                f"No dataset {name!r} in {root}. Available: {', '.join(available) or 'none'}."
            )
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            splits = sorted(p.stem for p in folder.glob("*.jsonl"))
            raise DataError(f"{path} does not exist; {name} has splits {splits}.")
        if text_pair_column == "auto":
            text_pair_column = "text_pair" if first_record_has(path, "text_pair") else None
        wanted = class_split_labels(folder, fold=fold, part=part) if part is not None else None
        source = cls.from_files(
            path,
            name=name,
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
        )
        if wanted is None:
            return source
        where = (
            f" ({split}.jsonl, fold {fold}, part {part})" if fold else f" ({split}.jsonl, {part})"
        )
        return source.restrict_to(wanted, where=where)


def check_columns(name: str, columns: list[str], text_column, label_column, pair_column) -> None:
    """Every named column exists; a multi-label source (``labels`` lists) is said to be one."""
    if label_column not in columns and "labels" in columns:
        raise DataError(
            f"Source {name!r} is multi-label (its rows carry 'labels' lists, no "
            f"{label_column!r}): meta-training and episodes read single-label sources only. "
            "Leave it out of train_datasets; adapt and evaluate read it as multi-label."
        )
    roles = (("text_column", text_column), ("label_column", label_column))
    for role, column in (*roles, ("text_pair_column", pair_column)):
        if column is not None and column not in columns:
            raise DataError(
                f"Source {name!r}: {role}={column!r} is not a column; the columns are "
                f"{columns}. Pass {role}=<one of them>."
            )


def class_split_labels(folder: Path, *, fold: str | None, part: str) -> list[str]:
    """The labels of one part of a dataset's ``splits.json`` (either shape)."""
    splits_file = folder / "splits.json"
    if not splits_file.is_file():
        raise DataError(
            f"part={part!r} needs {splits_file}, which does not exist: {folder.name} has no "
            "standard class split. Drop part=... to use all its labels."
        )
    spec = json.loads(splits_file.read_text(encoding="utf-8"))
    if "folds" in spec:
        folds = spec["folds"]
        if fold is None:
            raise DataError(
                f"{splits_file} has folds {sorted(folds)}: pass fold=... (CLI: --fold)."
            )
        if str(fold) not in folds:
            raise DataError(f"Fold {fold!r} is not in {splits_file}; it has folds {sorted(folds)}.")
        spec = folds[str(fold)]
    elif fold is not None:
        raise DataError(f"{splits_file} has a single class split, no folds: pass fold=None.")
    if part not in spec or not isinstance(spec[part], list):
        parts = [k for k, v in spec.items() if isinstance(v, list)]
        raise DataError(f"Part {part!r} is not in {splits_file}; it has parts {parts}.")
    return [str(label) for label in spec[part]]


def warn_unnamed_labels(labels: Sequence, where: str) -> None:
    """Integer labels become the names "0", "1", ...: say so, the export's id2label shows them."""
    if any(isinstance(label, int) and not isinstance(label, bool) for label in labels):
        warnings.warn(
            f"{where}: labels are integers without names; using them as the label names "
            "('0', '1', ...), which is what the export's id2label will show. Give the labels "
            "as names (strings) or a datasets ClassLabel feature to name the classes.",
            stacklevel=3,
        )


def as_task_source(
    train_data, *, text_column="text", label_column="label", text_pair_column=None
) -> TaskSource:
    """Whatever the user has (Dataset, (text, label) pairs, file paths) as a TaskSource."""
    if isinstance(train_data, TaskSource):
        return train_data
    import datasets

    if isinstance(train_data, (datasets.Dataset, datasets.DatasetDict)):
        return TaskSource.from_dataset(
            train_data,
            name="train_data",
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
        )
    if isinstance(train_data, (str, os.PathLike)) or (
        isinstance(train_data, Sequence)
        and train_data
        and isinstance(train_data[0], (str, os.PathLike))
    ):
        return TaskSource.from_files(
            train_data,
            name="train_data",
            text_column=text_column,
            label_column=label_column,
            text_pair_column=text_pair_column,
        )
    pairs = list(train_data)
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise DataError(
            "train_data must be a Dataset, file path(s), or a list of (text, label) pairs."
        )
    for _, label in pairs:
        label_text(label)  # a list (multi-label data) is refused, with where to go
    warn_unnamed_labels([label for _, label in pairs], "train_data")
    return TaskSource(
        name="train_data", texts=[t for t, _ in pairs], labels=[str(y) for _, y in pairs]
    )


def training_source(
    train_data, *, text_column="text", label_column="label", text_pair_column=None, labels=None
) -> tuple[TaskSource | None, list[str]]:
    """``(examples, classes)`` of an adaptation. ``train_data``: labelled examples (blank texts
    dropped), or None; ``labels``: the classes in order, some or all without examples (0-shot:
    those are named by their labels alone); without it, the labels of the examples."""
    if train_data is None:
        if labels is None:
            raise DataError(
                "Nothing to adapt to: give train_data (labelled examples), labels (the class "
                "names, for 0-shot), or both."
            )
        return None, label_set(None, labels)
    source = labelled_source(train_data, text_column, label_column, text_pair_column)
    if labels is not None:
        return source, label_set(source, labels)
    if len(source.label_index) < 2:
        raise DataError(
            f"train_data has {len(source.label_index)} class ({source.label_names}): a classifier "
            "needs at least 2 labels with examples."
        )
    return source, source.label_names


def labelled_source(train_data, text_column="text", label_column="label", text_pair_column=None):
    """Labelled examples as a ``TaskSource``: blank texts dropped, labels checked."""
    source = as_task_source(
        train_data,
        text_column=text_column,
        label_column=label_column,
        text_pair_column=text_pair_column,
    ).without_blank_texts()
    check_label_hygiene(source)
    return source
