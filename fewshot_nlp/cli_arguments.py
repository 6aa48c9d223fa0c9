"""The arguments of `adapt` and `evaluate`: dataclass fields, so each is a flag (``--x_y`` and
``--x-y``) and a key of ``--config YAML``, declared once (as `MetaTrainingArguments` are)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .meta.config import LabelNames
from .modeling.head import HeadInit


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class AdaptationArguments:
    """How the new classes are fitted; overrides of what the run recorded."""

    head_init: HeadInit | None = _help(
        "Head fitted on the support features (default: the run's adapt_head_init).", default=None
    )
    step_candidates: list[int] | None = _help(
        "Choose the inner steps among these by cross-validation on the support examples, "
        "e.g. 0 1 3.",
        default=None,
    )
    label_names: LabelNames | None = _help(
        "Use the label names as examples (default: the run's setting).", default=None
    )

    def overrides(self) -> dict:
        """As ``MAMLConfig`` field changes (what ``FewShotModel.from_pretrained`` takes)."""
        values = {
            "adapt_head_init": self.head_init,
            "adapt_step_candidates": self.step_candidates,
            "label_names": self.label_names,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class RejectionArguments:
    """The "none of these" label (adapt and evaluate spell it alike)."""

    unknown_label: str | None = _help(
        "Add this label, predicted when no class fits (e.g. out_of_scope). Its threshold and "
        "a temperature for the scores are fitted by cross-validation on the examples.",
        default=None,
    )
    unknown_file: str | None = _help(
        "Texts that belong to no class (.txt/.jsonl/.csv): the threshold then best separates "
        "them from the held-out examples. Needs --unknown_label.",
        default=None,
    )
    max_in_scope_loss: float | None = _help(
        "Points of held-out in-scope accuracy the rejection may cost (default 3; with "
        "--unknown_file, none unless given).",
        default=None,
    )


@dataclass
class AdaptArguments:
    model: str = _help("Meta-trained folder or any sequence-classification checkpoint.")
    output_dir: str = _help("Where the exported classifier goes.")
    train_file: list[str] = _help(
        ".jsonl/.json/.csv file(s) of labelled examples (none: 0-shot from --labels).",
        default_factory=list,
    )
    labels: list[str] | None = _help(
        "The classes, in order. Those without examples in --train_file are classified from "
        "their names alone (0-shot), so name them in words, e.g. card_arrival.",
        default=None,
    )
    remove_labels: list[str] | None = _help(
        "Labels to drop from an exported classifier (--model an export: its stored features "
        "refit the head; --train_file then adds labels or examples).",
        default=None,
    )
    text_column: str = _help("Column with the text.", default="text")
    label_column: str = _help("Column with the label name.", default="label")
    text_pair_column: str | None = _help("Second text for pair tasks.", default=None)
    steps: int | None = _help("Inner steps (default: the meta-trained number).", default=None)
    learning_rate: float | None = _help("Inner learning rate.", default=None)
    max_length: int | None = _help("Tokenizer max length.", default=None)
    overwrite: bool = _help("Replace an existing output_dir.", default=False)
    keep_adapter: bool = _help(
        "LoRA runs: write a PEFT adapter folder (AutoPeftModelForSequenceClassification loads "
        "it) instead of merging the adapter into the weights.",
        default=False,
    )
    push_to_hub: bool = _help("Upload the export to the Hub.", default=False)
    hub_model_id: str | None = _help("user/name for --push_to_hub.", default=None)
    private: bool = _help("Create the Hub repository as private.", default=False)
    trust_remote_code: bool = _help(
        "Run model code shipped in the model folder (config.json auto_map). Off: such a "
        "model is refused before anything runs.",
        default=False,
    )


@dataclass
class EvaluateArguments:
    model: str = _help("Meta-trained folder or any classification checkpoint.")
    baseline_model: str | None = _help(
        "Checkpoint the baselines run on (default: the base encoder the meta-model came from, "
        "so baselines never benefit from or suffer our meta-training).",
        default=None,
    )
    data_dir: str | None = _help("Data directory (else $FEWSHOT_NLP_DATA).", default=None)
    dataset: str | None = _help(
        "Episodic protocol: dataset name in the data directory.", default=None
    )
    split: str = _help("File of the dataset the episodes come from.", default="test")
    fold: str | None = _help("Class-split fold of splits.json (e.g. 01).", default=None)
    part: str | None = _help("Class-split part: train, validation or test.", default=None)
    n_way: str = _help("Classes per episode: int, 'min-max' or 'all'.", default="5")
    k_shot: str = _help("Comma-separated shots per class.", default="1,5")
    q_query: int = _help("Query examples per class.", default=15)
    episodes: int = _help("Episodes per shot setting.", default=600)
    seed: int = _help("Seed of the episode stream.", default=0)
    method: str = _help(
        "Comma-separated methods: maml, maml-base (the same adaptation without meta-training: "
        "the meta-value row), logreg, prototype, finetune, setfit.",
        default="maml,maml-base,logreg,prototype,finetune",
    )
    max_episodes: str | None = _help(
        "Cap slow methods to the first N of the same episodes, e.g. finetune=100.", default=None
    )
    train_file: str | None = _help("Fixed-shot protocol: few-shot file.", default=None)
    test_file: str | None = _help("Fixed-shot protocol: test file.", default=None)
    out_of_scope_file: str | None = _help(
        "Fixed-shot protocol: texts of no class scored with --test_file (in-scope accuracy, "
        "out-of-scope recall / precision, AUROC, FPR at 95%% TPR); methods maml, maml-base, "
        "logreg, prototype.",
        default=None,
    )
    finetune_epochs: int = _help("Baseline epochs.", default=10)
    finetune_batch_size: int = _help("Baseline mini-batch size.", default=16)
    finetune_learning_rate: float = _help(
        "Baseline peak learning rate (linear warm-up over 10%% of steps, then decay).",
        default=5e-5,
    )
    logreg_c: float = _help("C of the logreg baseline.", default=10.0)
    prototype_pooling: Literal["mean", "head"] = _help(
        "Prototype features: 'mean' (mean-pooled last layer) or 'head' (head input).",
        default="mean",
    )
    prototype_distance: Literal["cosine", "euclidean"] = _help(
        "Prototype distance: 'cosine' (L2-normalised features) or 'euclidean'.",
        default="cosine",
    )
    output_file: str | None = _help("Write the results as JSON here.", default=None)
    plot: str | None = _help("Write accuracy vs shots (PNG) here.", default=None)
    overwrite: bool = _help("Replace an existing output_file / plot.", default=False)
    trust_remote_code: bool = _help(
        "Run model code shipped in the model folder (config.json auto_map). Off: such a "
        "model is refused before anything runs.",
        default=False,
    )


@dataclass
class PredictArguments:
    model: str = _help("An exported classifier folder.")
    top_k: int = _help("Labels kept per text.", default=3)
    input_file: str | None = _help(".txt (one per line), .jsonl, .csv.", default=None)
    text_column: str = _help("Text field of .jsonl/.csv.", default="text")
    output_file: str | None = _help("Write JSON lines here.", default=None)
    overwrite: bool = _help("Replace an existing output_file.", default=False)
    batch_size: int = _help("Texts per forward pass.", default=32)
    trust_remote_code: bool = _help(
        "Run model code shipped in the model folder (config.json auto_map). Off: such a "
        "model is refused before anything runs.",
        default=False,
    )


@dataclass
class EpisodesArguments:
    data_dir: str | None = _help("Data directory.", default=None)
    datasets: list[str] = _help(
        "Sources, NAME[:SPLIT[:FOLD[:PART]]].",
        default_factory=lambda: ["banking77:train:01:train", "snips", "trec", "sst2"],
    )
    n_way: str = _help("int, 'min-max' or 'all'.", default="5")
    k_shot: int = _help("Support per class.", default=2)
    q_query: int = _help("Query per class.", default=2)
    episodes: int = _help("How many to print.", default=3)
    temperature: float = _help("Source mixing temperature.", default=0.5)
    seed: int = _help("Seed.", default=0)
