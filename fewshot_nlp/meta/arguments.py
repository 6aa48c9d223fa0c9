"""`MetaTrainingArguments`: every field is a CLI flag and a YAML key (via HfArgumentParser)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from ..argument_parsing import help_field, parse_dataclasses
from ..data.episodes import check_counts, parse_n_way
from ..errors import ConfigError
from ..modeling.lora import DEFAULT_LORA_TARGETS
from .config import MAMLConfig


@dataclass
class MetaTrainingArguments(MAMLConfig):
    """Arguments of `MetaTrainer`, named as in ``transformers.TrainingArguments`` where shared.

    The adaptation settings (inner steps, scope, head, ...) are inherited from `MAMLConfig`,
    so each is declared once and is a CLI flag and a YAML key here too.
    """

    output_dir: str = help_field(
        "Where checkpoints and the final meta-model are written.", default="runs/meta"
    )
    overwrite_output_dir: bool = help_field(
        "Allow writing into an output_dir holding another run.", default=False
    )
    max_steps: int = help_field("Number of meta-updates (outer optimizer steps).", default=1000)
    learning_rate: float = help_field("Outer (meta) AdamW learning rate.", default=2e-5)
    weight_decay: float = help_field("AdamW weight decay of the outer optimizer.", default=0.0)
    warmup_steps: int = help_field("Linear warm-up steps of the outer learning rate.", default=0)
    lr_scheduler_type: str = help_field(
        "transformers scheduler name: linear, cosine, constant, ...", default="linear"
    )
    max_grad_norm: float = help_field(
        "Clip the meta-gradient to this norm (0: no clipping).", default=1.0
    )
    seed: int = help_field("Seed of the model init, the episode stream and dropout.", default=42)
    logging_steps: int = help_field("Log metrics every this many steps.", default=10)
    eval_steps: int = help_field("Episodic validation every this many steps (0: never).", default=0)
    save_steps: int = help_field(
        "Save a checkpoint every this many steps (0: only at the end).", default=0
    )
    save_total_limit: int | None = help_field(
        "Keep at most this many checkpoints (oldest pruned).", default=None
    )
    load_best_model_at_end: bool = help_field(
        "End with the checkpoint of best eval accuracy (needs eval_steps and eval datasets; "
        "a better evaluation is checkpointed at once, so save_steps need not match).",
        default=False,
    )
    mixed_precision: Literal["no", "bf16"] = help_field(
        "'no' or 'bf16' (fp16 is refused: no loss scaling in the inner loop). bf16 is 1.3-1.7 x "
        "faster on a CPU with avx512_bf16 (BENCHMARKS.md).",
        default="no",
    )
    gradient_accumulation_steps: int = help_field("Meta-batches accumulated per update.", default=1)
    report_to: list[str] = help_field(
        "Trackers through Accelerate, e.g. tensorboard ('none': off).",
        default_factory=lambda: ["none"],
    )
    resume_from_checkpoint: str | None = help_field(
        "A checkpoint folder, or 'true' for the latest in output_dir.", default=None
    )
    push_to_hub: bool = help_field("Push the final meta-model to the Hub.", default=False)
    hub_model_id: str | None = help_field(
        "Repository id for push_to_hub, e.g. user/name.", default=None
    )
    use_cpu: bool = help_field("Run on the CPU even if a GPU is present.", default=False)
    max_nan_steps: int = help_field(
        "Non-finite meta-losses skipped (with a warning) before stopping.", default=10
    )
    # ---- meta-learning
    meta_batch_size: int = help_field(
        "Episodes per meta-update (split across processes).", default=4
    )
    n_way: str = help_field(
        "Classes per episode: an int, a range 'min-max', or 'all'.", default="5"
    )
    k_shot: int = help_field("Support examples per class.", default=5)
    q_query: int = help_field("Query examples per class.", default=5)
    temperature: float = help_field(
        "Source mixing: size**temperature (0 uniform, 1 proportional).", default=0.5
    )
    merge_lora_on_save: bool = help_field(
        "Save the final LoRA meta-model merged into full weights (default: adapter + base); "
        "adapt() then adapts only the head of the merged model.",
        default=False,
    )
    weight_interpolation: float = help_field(
        "The saved meta-model is start + this * (trained - start), tensor by tensor (WiSE-FT; "
        "LoRA: the adapters' update scaled): 1 keeps all of meta-training, 0 the encoder it "
        "started from. Checkpoints keep the trained weights, so a run resumes exactly.",
        default=1.0,
    )
    eval_episodes: int = help_field("Episodes per validation (per shot count).", default=50)
    eval_n_way: str | None = help_field(
        "Classes per validation episode: 'all' scores every class of the validation part at "
        "once, as a classifier is used (default: n_way).",
        default=None,
    )
    eval_k_shot: list[int] | None = help_field(
        "Shots of the validation episodes, e.g. 0 1 5 (0: label names only); the best "
        "checkpoint has the best mean accuracy over them (default: k_shot).",
        default=None,
    )
    max_length: int = help_field("Tokenizer max_length (longer texts are truncated).", default=64)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(
                f"mixed_precision={self.mixed_precision!r}: use 'no' or 'bf16'. fp16 needs loss "
                "scaling inside the inner loop, which fewshot-nlp does not do."
            )
        if self.load_best_model_at_end and self.eval_steps <= 0:
            raise ConfigError(
                "load_best_model_at_end needs evaluations to choose from: set eval_steps > 0 "
                "(and give eval_datasets)."
            )
        for name in (
            "max_steps",
            "meta_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        self.parsed_n_way()
        if not 0.0 <= self.weight_interpolation <= 1.0:
            raise ConfigError(
                f"weight_interpolation must be in [0, 1], got {self.weight_interpolation}."
            )
        if self.eval_n_way is not None:
            parse_n_way(self.eval_n_way)
        check_counts((("eval_k_shot", k) for k in self.eval_k_shot or []), minimum=0)

    def parsed_n_way(self) -> int | tuple[int, int] | str:
        return parse_n_way(self.n_way)

    def maml_config(self) -> MAMLConfig:
        return MAMLConfig(**{f.name: getattr(self, f.name) for f in fields(MAMLConfig)})


@dataclass
class ModelDataArguments:
    model_name_or_path: str = help_field(
        "Checkpoint folder or id; 'minilm' = the packaged all-MiniLM-L6-v2.", default="minilm"
    )
    data_dir: str | None = help_field("Data directory (else $FEWSHOT_NLP_DATA).", default=None)
    train_datasets: list[str] = help_field(
        "Meta-training sources, each NAME[:SPLIT[:FOLD[:PART]]].",
        default_factory=lambda: ["snips", "trec", "agnews"],
    )
    eval_datasets: list[str] = help_field(
        "Validation sources, NAME[:SPLIT[:FOLD[:PART]]].", default_factory=list
    )
    lora_r: int = help_field("LoRA rank (adapt_scope=lora).", default=8)
    lora_alpha: int = help_field("LoRA alpha (adapt_scope=lora).", default=16)
    pooling: Literal["model", "mean"] = help_field(
        "What the head reads: 'model' = the class's own head input (BERT: the [CLS] "
        "pooler); 'mean' = the mean of the last hidden states, as sentence encoders are "
        "meant to be used (BERT checkpoints; still a standard transformers class).",
        default="model",
    )
    lora_target_modules: list[str] = help_field(
        "Module names LoRA wraps.", default_factory=lambda: list(DEFAULT_LORA_TARGETS)
    )
    attn_implementation: str = help_field("eager or sdpa.", default="sdpa")
    trust_remote_code: bool = help_field("Run model code from the checkpoint.", default=False)

    def load(self):
        """``(model, tokenizer, lora_config)`` to meta-train, as these arguments describe."""
        from ..modeling.lora import default_lora_config
        from ..modeling.pretrained import load_classifier

        model, tokenizer = load_classifier(
            self.model_name_or_path,
            self.attn_implementation,
            self.trust_remote_code,
            pooling=self.pooling,
        )
        lora = default_lora_config(
            self.lora_r, self.lora_alpha, target_modules=self.lora_target_modules
        )
        return model, tokenizer, lora


def parse_meta_train_args(
    argv: list[str], *, prog: str, description: str, config: str | None = None
) -> tuple[ModelDataArguments, MetaTrainingArguments]:
    """``--config YAML`` gives the defaults (``config`` when not given), flags override them."""
    types = (ModelDataArguments, MetaTrainingArguments)
    return parse_dataclasses(types, argv, prog=prog, description=description, config=config)
