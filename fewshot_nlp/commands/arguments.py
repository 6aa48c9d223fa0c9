"""The commands' own arguments (what to read and where to write): dataclass fields, so each
is a flag (``--x_y`` and ``--x-y``) and a key of ``--config YAML``, declared once. How the
classes are fitted is ``classifier.AdaptationArguments``, shared with the Python API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..argument_parsing import help_field
from ..evaluation.methods import DEFAULT_METHODS, METHODS
from ..multilabel.arguments import METHODS as MULTI_LABEL_METHODS
from ..unlabeled.arguments import POOL_METHODS
from .common import TRUST_REMOTE_CODE


@dataclass
class AdaptArguments:
    model: str = help_field("Meta-trained folder or any sequence-classification checkpoint.")
    output_dir: str = help_field("Where the exported classifier goes.")
    train_file: list[str] = help_field(
        ".jsonl/.json/.csv file(s) of labelled examples (none: 0-shot from --labels).",
        default_factory=list,
    )
    labels: list[str] | None = help_field(
        "The classes, in order. Those without examples in --train_file are classified from "
        "their names alone (0-shot), so name them in words, e.g. card_arrival.",
        default=None,
    )
    remove_labels: list[str] | None = help_field(
        "Labels to drop from an exported classifier (--model an export: its stored features "
        "refit the head; --train_file then adds labels or examples).",
        default=None,
    )
    text_column: str = help_field("Column with the text.", default="text")
    label_column: str = help_field("Column with the label name.", default="label")
    text_pair_column: str | None = help_field("Second text for pair tasks.", default=None)
    multi_label: bool = help_field(
        "A text may have several labels (set by itself when --train_file rows carry "
        "--labels_column lists); needed for 0-shot multi-label from --labels alone.",
        default=False,
    )
    labels_column: str = help_field(
        "Multi-label files: the field with each text's list of labels (rows with it make the "
        "task multi-label).",
        default="labels",
    )
    label_separator: str | None = help_field(
        "Multi-label CSV: the labels column holds the labels joined by this, e.g. '|'.",
        default=None,
    )
    multilabel_threshold: Literal["fit", "kfold"] = help_field(
        "Multi-label: 'fit' (on at sigmoid >= 0.5 of the class-balanced fit) or 'kfold' "
        "(thresholds moved by k-fold over the shots where that gains; BENCHMARKS.md).",
        default="fit",
    )
    overwrite: bool = help_field("Replace an existing output_dir.", default=False)
    keep_adapter: bool = help_field(
        "LoRA runs: write a PEFT adapter folder (AutoPeftModelForSequenceClassification loads "
        "it) instead of merging the adapter into the weights.",
        default=False,
    )
    onnx: bool = help_field(
        "Also write onnx/model.onnx and onnx/model_quantized.onnx (int8) into the export.",
        default=False,
    )
    push_to_hub: bool = help_field("Upload the export to the Hub.", default=False)
    hub_model_id: str | None = help_field("user/name for --push_to_hub.", default=None)
    private: bool = help_field("Create the Hub repository as private.", default=False)
    trust_remote_code: bool = help_field(TRUST_REMOTE_CODE, default=False)


@dataclass
class EvaluateArguments:
    model: str = help_field("Meta-trained folder or any classification checkpoint.")
    baseline_model: str | None = help_field(
        "Checkpoint the baselines run on (default: the base encoder the meta-model came from, "
        "so baselines never benefit from or suffer our meta-training).",
        default=None,
    )
    data_dir: str | None = help_field("Data directory (else $FEWSHOT_NLP_DATA).", default=None)
    dataset: str | None = help_field(
        "Episodic protocol: dataset name in the data directory.", default=None
    )
    split: str = help_field("File of the dataset the episodes come from.", default="test")
    fold: str | None = help_field("Class-split fold of splits.json (e.g. 01).", default=None)
    part: str | None = help_field("Class-split part: train, validation or test.", default=None)
    n_way: str = help_field("Classes per episode: int, 'min-max' or 'all'.", default="5")
    k_shot: list[int] = help_field(
        "Shots per class, e.g. 0 1 5 (0: label names only).", default_factory=lambda: [1, 5]
    )
    q_query: int = help_field("Query examples per class.", default=15)
    episodes: int = help_field("Episodes per shot setting.", default=600)
    seed: int = help_field("Seed of the episode stream.", default=0)
    method: list[str] = help_field(
        "Methods to compare (maml-base: the same adaptation without meta-training, the "
        "meta-value row; label-cosine: 0 shots only; X+pool: X self-trained on the unlabeled "
        "pool, with --unlabeled_file or --episode_pool).",
        default_factory=lambda: list(DEFAULT_METHODS),
        metadata={"choices": list(dict.fromkeys([*METHODS, *MULTI_LABEL_METHODS, *POOL_METHODS]))},
    )
    max_episodes: list[str] | None = help_field(
        "Cap slow methods to the first N of the same episodes: METHOD=N pairs, e.g. finetune=100.",
        default=None,
    )
    train_file: str | None = help_field(
        "Fixed-shot protocol: few-shot file (without one, a 0-shot row: the --test_file's "
        "label names alone).",
        default=None,
    )
    test_file: str | None = help_field("Fixed-shot protocol: test file.", default=None)
    support_pool: str | None = help_field(
        "Multi-label test file: draw support sets of --k_shot positives per label from this "
        "file (greedily, one set per seed, the same for every method) instead of --train_file.",
        default=None,
    )
    seeds: int = help_field("Multi-label: support sets drawn per --k_shot.", default=5)
    labels_column: str = help_field("Multi-label files: the labels-list field.", default="labels")
    out_of_scope_file: str | None = help_field(
        "Fixed-shot protocol: texts of no class scored with --test_file (in-scope accuracy, "
        "out-of-scope recall / precision, AUROC, FPR at 95%% TPR); methods maml, maml-base, "
        "logreg, prototype.",
        default=None,
    )
    finetune_epochs: int = help_field("Baseline epochs.", default=10)
    finetune_batch_size: int = help_field("Baseline mini-batch size.", default=16)
    finetune_learning_rate: float = help_field(
        "Baseline peak learning rate (linear warm-up over 10%% of steps, then decay).",
        default=5e-5,
    )
    logreg_c: float = help_field("C of the logreg baseline.", default=10.0)
    prototype_pooling: Literal["mean", "head"] = help_field(
        "Prototype features: 'mean' (mean-pooled last layer) or 'head' (head input).",
        default="mean",
    )
    prototype_distance: Literal["cosine", "euclidean"] = help_field(
        "Prototype distance: 'cosine' (L2-normalised features) or 'euclidean'.",
        default="cosine",
    )
    output_file: str | None = help_field("Write the results as JSON here.", default=None)
    plot: str | None = help_field("Write accuracy vs shots (PNG) here.", default=None)
    overwrite: bool = help_field("Replace an existing output_file / plot.", default=False)
    trust_remote_code: bool = help_field(TRUST_REMOTE_CODE, default=False)


@dataclass
class EpisodesArguments:
    data_dir: str | None = help_field("Data directory.", default=None)
    datasets: list[str] = help_field(
        "Sources, NAME[:SPLIT[:FOLD[:PART]]].",
        default_factory=lambda: ["banking77:train:01:train", "snips", "trec", "sst2"],
    )
    n_way: str = help_field("int, 'min-max' or 'all'.", default="5")
    k_shot: int = help_field("Support per class.", default=2)
    q_query: int = help_field("Query per class.", default=2)
    episodes: int = help_field("How many to print.", default=3)
    temperature: float = help_field("Source mixing temperature.", default=0.5)
    seed: int = help_field("Seed.", default=0)
