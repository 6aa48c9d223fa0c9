import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fewshot_nlp import ConfigError, TaskSource
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.meta.arguments import MetaTrainingArguments
from fewshot_nlp.meta.trainer import MetaTrainer

from .conftest import tiny_meta_args, tiny_model


@pytest.fixture(scope="module")
def small_sources(data_dir):
    return [
        TaskSource.from_data_dir("trec", data_dir, split="test"),
        TaskSource.from_data_dir("snips", data_dir, split="validation"),
    ]


def make_trainer(tokenizer, sources, tmp_path, **overrides):
    args = tiny_meta_args(tmp_path / "run", **{"logging_steps": 2, "seed": 3, **overrides})
    model = tiny_model("bert", hidden_dropout_prob=0.1)
    return MetaTrainer(model, args, sources, sources, tokenizer=tokenizer)


def weights(trainer):
    return {n: p.detach().clone() for n, p in trainer.maml.named_parameters()}


def test_interrupted_and_resumed_equals_uninterrupted(tokenizer, small_sources, tmp_path):
    full = make_trainer(tokenizer, small_sources, tmp_path / "a")
    full.train()

    class StopAt3:
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: finish the step, checkpoint, exit

    part = make_trainer(tokenizer, small_sources, tmp_path / "b")
    part.add_callback(StopAt3())
    part.train()
    assert part.state.global_step == 3
    assert (tmp_path / "b" / "run" / "checkpoint-3" / "trainer_state.json").is_file()
    resumed = make_trainer(tokenizer, small_sources, tmp_path / "b", resume_from_checkpoint="true")
    resumed.train()
    a, b = weights(full), weights(resumed)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_saved_meta_model_and_checkpoint_pruning(tokenizer, small_sources, tmp_path):
    trainer = make_trainer(
        tokenizer,
        small_sources,
        tmp_path,
        save_steps=2,
        save_total_limit=2,
        eval_steps=3,
        eval_episodes=4,
        learn_inner_lr="param",
    )
    trainer.train()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    meta = json.loads((run / "fewshot_nlp.json").read_text())
    assert meta["maml"]["learn_inner_lr"] == "param" and meta["max_length"] == 16
    assert {s["name"] for s in meta["meta_training"]["sources"]} == {"trec", "snips"}
    assert (run / "model.safetensors").is_file() and (run / "inner_lrs.safetensors").is_file()
    logs = trainer.state.log_history
    assert any("eval_accuracy" in entry for entry in logs)
    assert any("inner_lr/bert__pooler__dense__weight" in entry for entry in logs)


def test_output_dir_with_another_run_is_refused(tokenizer, small_sources, tmp_path):
    make_trainer(tokenizer, small_sources, tmp_path, max_steps=1).train()
    with pytest.raises(ConfigError, match="already holds a run"):
        make_trainer(tokenizer, small_sources, tmp_path, max_steps=1).train()


def test_resume_from_other_config_is_refused(tokenizer, small_sources, tmp_path):
    make_trainer(tokenizer, small_sources, tmp_path, max_steps=2, save_steps=2).train()
    other = make_trainer(
        tokenizer,
        small_sources,
        tmp_path,
        max_steps=4,
        adapt_scope="top:1",
        resume_from_checkpoint="true",
    )
    with pytest.raises(ConfigError, match="another model or adaptation config"):
        other.train()


def test_read_only_output_keeps_previous_checkpoint(tokenizer, small_sources, tmp_path):
    from fewshot_nlp import TrainingError

    trainer = make_trainer(tokenizer, small_sources, tmp_path, max_steps=4, save_steps=2)

    class Break:
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                Path(args.output_dir).chmod(0o500)

    trainer.add_callback(Break())
    if os.geteuid() == 0:  # root ignores permissions: simulate a full disk instead
        import fewshot_nlp.meta.checkpointing as checkpointing

        real = checkpointing.save_file

        def full_disk(*a, **k):
            if trainer.state.global_step == 4:
                raise OSError(28, "No space left on device")
            return real(*a, **k)

        checkpointing.save_file = full_disk
    try:
        with pytest.raises(TrainingError, match="Earlier checkpoints are intact"):
            trainer.train()
    finally:
        if os.geteuid() == 0:
            checkpointing.save_file = real
        (tmp_path / "run").chmod(0o700)
    assert (tmp_path / "run" / "checkpoint-2" / "optimizer.safetensors").is_file()
    assert not list((tmp_path / "run").glob(".tmp-*"))


def test_nan_losses_skip_then_stop(tokenizer, small_sources, tmp_path):
    from fewshot_nlp import TrainingError

    trainer = make_trainer(tokenizer, small_sources, tmp_path, max_nan_steps=2)
    with torch.no_grad():
        trainer.model.bert.embeddings.word_embeddings.weight.fill_(float("nan"))
    with (
        pytest.warns(UserWarning, match="Skipping a meta-step"),
        pytest.raises(TrainingError, match="non-finite"),
    ):
        trainer.train()


def test_fp16_refused_and_bad_n_way():
    with pytest.raises(ConfigError, match="fp16"):
        MetaTrainingArguments(mixed_precision="fp16")
    with pytest.raises(ConfigError, match="n_way"):
        MetaTrainingArguments(n_way="five")


def test_cli_help_and_yaml_precedence(tmp_path, capsys):
    from fewshot_nlp.argument_parsing import check_config_keys
    from fewshot_nlp.meta.arguments import ModelDataArguments

    with pytest.raises(SystemExit):
        cli_main(["meta-train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--meta_batch_size", "--inner_learning_rate", "--config", "--adapt_scope"):
        assert flag in text
    from dataclasses import fields

    for cls in (ModelDataArguments, MetaTrainingArguments):
        assert all(f.metadata.get("help") for f in fields(cls)), cls
    with pytest.raises(ConfigError, match="Did you mean 'learning_rate'"):
        check_config_keys({"learnin_rate": 1}, (MetaTrainingArguments,), "x.yaml")
    config = tmp_path / "c.yaml"
    config.write_text("max_steps: 7\nk_shot: 3\nlearnig_rate: 1\n")
    assert cli_main(["meta-train", "--config", str(config)]) == 2
    assert "Did you mean 'learning_rate'" in capsys.readouterr().err


def test_yaml_then_flags(tmp_path, monkeypatch):
    from transformers import HfArgumentParser

    from fewshot_nlp.meta.arguments import ModelDataArguments

    parser = HfArgumentParser((ModelDataArguments, MetaTrainingArguments))
    parser.set_defaults(max_steps=7, k_shot=3)
    _, args = parser.parse_args_into_dataclasses(["--k-shot", "4", "--n_way", "2-6"])
    assert (args.max_steps, args.k_shot, args.parsed_n_way()) == (7, 4, (2, 6))


@pytest.mark.integration
def test_two_processes_equal_one(tmp_path, data_dir):
    """Two processes, each running its half of the meta-batch, equal one process running the
    whole meta-batch."""
    script = Path(__file__).with_name("accelerate_equivalence.py")
    env = {**os.environ, "FEWSHOT_NLP_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one.safetensors"
    two = tmp_path / "two.safetensors"
    subprocess.run(
        [sys.executable, str(script), str(one)],
        check=True,
        env=env,
        timeout=600,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--cpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(script),
            str(two),
        ],
        check=True,
        env=env,
        timeout=600,
    )
    from safetensors.torch import load_file

    a, b = load_file(str(one)), load_file(str(two))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


@pytest.mark.integration
def test_short_minilm_run_improves_held_out_accuracy(minilm_path, data_dir, tmp_path):
    """Meta-training on other classes lifts accuracy on held-out banking77 classes."""
    from fewshot_nlp.modeling.pretrained import load_classifier

    model, tokenizer = load_classifier(minilm_path)
    train = [
        TaskSource.from_spec(s, data_dir) for s in ("banking77:train:01:train", "snips", "trec")
    ]
    held_out = [TaskSource.from_spec("banking77:train:01:test", data_dir)]
    args = MetaTrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=60,
        learning_rate=5e-4,
        meta_batch_size=2,
        n_way="5",
        k_shot=2,
        q_query=4,
        inner_steps=1,
        inner_learning_rate=0.05,
        adapt_scope="lora",
        eval_episodes=60,
        max_length=32,
        seed=0,
        use_cpu=True,
        logging_steps=20,
    )
    trainer = MetaTrainer(model, args, train, held_out, tokenizer=tokenizer)
    before = trainer.evaluate()["eval_accuracy"]  # the same 60 episodes both times
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    assert after > before + 0.01, (before, after)


def test_tensorboard_logs_offline(tokenizer, small_sources, tmp_path):
    trainer = make_trainer(
        tokenizer, small_sources, tmp_path, max_steps=2, logging_steps=1, report_to=["tensorboard"]
    )
    trainer.train()
    events = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_load_best_model_at_end(tokenizer, small_sources, tmp_path):
    trainer = make_trainer(
        tokenizer,
        small_sources,
        tmp_path,
        max_steps=6,
        eval_steps=2,
        save_steps=2,
        eval_episodes=4,
        load_best_model_at_end=True,
        learning_rate=5e-3,
    )
    trainer.train()
    best = trainer.state.best_model_checkpoint
    evals = [
        (e["eval_accuracy"], e["step"]) for e in trainer.state.log_history if "eval_accuracy" in e
    ]
    best_accuracy = max(a for a, _ in evals)
    first_best_step = next(step for a, step in evals if a == best_accuracy)
    assert trainer.state.best_metric == best_accuracy
    assert best.endswith(f"checkpoint-{first_best_step}")
    from safetensors.torch import load_file

    final = load_file(str(tmp_path / "run" / "model.safetensors"))
    chosen = load_file(str(Path(best) / "model.safetensors"))
    assert all(torch.equal(final[k], chosen[k]) for k in chosen)


def test_best_checkpoint_holds_the_evaluated_weights(tokenizer, small_sources, tmp_path):
    """With save_steps=0 (or not a multiple of eval_steps) the best model is still exactly the
    one evaluated best, and the start (step 0) is a candidate."""
    seen = {}

    class Snapshot:
        def on_evaluate(self, args, state, control, model, metrics, **kwargs):
            seen[state.global_step] = {
                n: p.detach().clone()
                for n, p in model.state_dict().items()
                if "classifier" not in n
            }

    trainer = make_trainer(
        tokenizer,
        small_sources,
        tmp_path,
        max_steps=5,
        eval_steps=2,
        save_steps=0,
        eval_episodes=4,
        load_best_model_at_end=True,
        learning_rate=5e-3,
    )
    trainer.add_callback(Snapshot())
    trainer.train()
    evals = [
        (e["eval_accuracy"], e["step"]) for e in trainer.state.log_history if "eval_accuracy" in e
    ]
    assert [step for _, step in evals] == [0, 2, 4]
    best_step = next(step for a, step in evals if a == max(a for a, _ in evals))
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best_step}")
    from safetensors.torch import load_file

    final = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.equal(final[k], v) for k, v in seen[best_step].items())


def test_meta_training_arguments_declare_the_maml_settings_once():
    from dataclasses import fields

    from fewshot_nlp import MAMLConfig

    args = MetaTrainingArguments(head_init="cosine", adapt_head_init="logreg", head_name="score")
    maml_fields = {f.name for f in fields(MAMLConfig)}
    assert maml_fields <= {f.name for f in fields(MetaTrainingArguments)}
    config = args.maml_config()
    assert (config.head_init, config.adapt_head_init, config.head_name) == (
        "cosine",
        "logreg",
        "score",
    )
    with pytest.raises(ConfigError, match="label_names"):
        MetaTrainingArguments(label_names="sometimes")


@pytest.mark.parametrize(
    "recipe", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml"))
)
def test_every_shipped_recipe_parses(recipe):
    """configs/*.yaml: known keys only, values the dataclasses accept (pooling included)."""
    from fewshot_nlp.meta.arguments import parse_meta_train_args

    path = Path(__file__).parents[1] / "configs" / recipe
    model_args, args = parse_meta_train_args(
        ["--output_dir", "x"], prog="test", description="", config=str(path)
    )
    args.parsed_n_way()
    assert model_args.pooling == "mean"


def test_bf16_autocast_on_cpu_trains_and_saves_float32(tokenizer, small_sources, tmp_path):
    """mixed_precision=bf16 on a CPU: the steps run under autocast, the weights stay fp32."""
    from accelerate.state import AcceleratorState

    # Accelerate keeps one precision per process: the other tests' trainers set 'no'.
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        trainer = make_trainer(
            tokenizer,
            small_sources,
            tmp_path,
            mixed_precision="bf16",
            max_steps=2,
        )
        assert trainer.accelerator.mixed_precision == "bf16"
        before = weights(trainer)
        trainer.train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    history = [h for h in trainer.state.log_history if "meta_loss" in h]
    assert history and all(math.isfinite(h["meta_loss"]) for h in history)
    after = weights(trainer)
    assert all(v.dtype == torch.float32 for v in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_callbacks_ask_for_log_evaluate_and_save(tokenizer, small_sources, tmp_path):
    """As in transformers: a callback's should_log / should_evaluate / should_save act on the
    step it set them, and only on that step."""

    class Ask:
        def on_step_end(self, args, state, control, **kwargs):
            control.should_save = state.global_step == 1
            control.should_evaluate = state.global_step == 2
            control.should_log = state.global_step == 3

    trainer = make_trainer(tokenizer, small_sources, tmp_path, logging_steps=100, max_steps=4)
    trainer.add_callback(Ask())
    trainer.train()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1"]
    assert [h["step"] for h in trainer.state.log_history if "eval_accuracy" in h] == [2]
    assert [h["step"] for h in trainer.state.log_history if "meta_loss" in h] == [3]


def test_load_best_needs_something_to_evaluate(tokenizer, small_sources, tmp_path):
    with pytest.raises(ConfigError, match="set eval_steps > 0"):
        tiny_meta_args(tmp_path, load_best_model_at_end=True, eval_steps=0)
    args = tiny_meta_args(tmp_path, load_best_model_at_end=True, eval_steps=2)
    with pytest.raises(ConfigError, match="pass eval_sources"):
        MetaTrainer(tiny_model(), args, small_sources, tokenizer=tokenizer)


def test_validation_shaped_like_use_with_a_step_zero_baseline(tmp_path, tokenizer, data_dir):
    """Full-way validation at 0 and 1 shots, evaluated at step 0 and along the run; the run
    records the curve and the meta-value on it (best minus step 0), and its card shows both."""
    import json

    from fewshot_nlp import TaskSource
    from fewshot_nlp.meta.trainer import MetaTrainer

    train = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    held = [TaskSource.from_data_dir("banking77", data_dir, split="test", fold="01", part="test")]
    held = [held[0].restrict_to(held[0].label_names[:4])]
    args = tiny_meta_args(
        tmp_path / "run",
        max_steps=2,
        eval_steps=1,
        eval_episodes=2,
        eval_n_way="all",
        eval_k_shot=[0, 1],
    )
    state = MetaTrainer(tiny_model(), args, train, held, tokenizer=tokenizer).train()
    evals = [h for h in state.log_history if "eval_accuracy" in h]
    assert [h["step"] for h in evals] == [0, 1, 2]
    for h in evals:
        assert h["eval_accuracy"] == pytest.approx(
            (h["eval_accuracy_0shot"] + h["eval_accuracy_1shot"]) / 2
        )
    record = json.loads((tmp_path / "run" / "fewshot_nlp.json").read_text())["validation"]
    best = max(evals, key=lambda h: h["eval_accuracy"])
    assert record["step_0"] == evals[0]["eval_accuracy"] and record["best"] == best["eval_accuracy"]
    assert record["meta_value"] == pytest.approx(best["eval_accuracy"] - evals[0]["eval_accuracy"])
    card = (tmp_path / "run" / "README.md").read_text()
    assert "meta-training added" in card and "| step | eval_accuracy |" in card


def test_checkpoint_state_round_trips_without_pickles(tmp_path):
    """Optimizer, scheduler and sampler states come back equal from safetensors + JSON."""
    from transformers.optimization import get_scheduler

    from fewshot_nlp.meta.checkpointing import CheckpointRegistry

    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=1, num_training_steps=10)
    for _ in range(3):
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
    registry = CheckpointRegistry()
    registry.register("optimizer", optimizer)
    registry.register("scheduler", scheduler)
    registry.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "optimizer.json",
        "optimizer.safetensors",
        "scheduler.json",
    ]
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh_scheduler = get_scheduler("linear", fresh, num_warmup_steps=1, num_training_steps=10)
    other = CheckpointRegistry()
    other.register("optimizer", fresh)
    other.register("scheduler", fresh_scheduler)
    other.load(tmp_path)
    saved, loaded = optimizer.state_dict(), fresh.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for key, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(loaded["state"][key][name], value)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()


def test_weight_interpolation_saves_the_start_plus_a_share_of_the_update(
    tokenizer, small_sources, tmp_path
):
    """weight_interpolation w: the saved meta-model is start + w * (trained - start), tensor
    by tensor; an unmerged LoRA run scales its adapters' update (w = 0: no update)."""
    import copy

    from safetensors.torch import load_file

    start = tiny_model("bert")
    init = {k: v.clone() for k, v in start.state_dict().items()}

    def run(name, weight, **extra):
        args = tiny_meta_args(tmp_path / name, max_steps=3, seed=3, weight_interpolation=weight)
        for key, value in extra.items():
            setattr(args, key, value)
        MetaTrainer(copy.deepcopy(start), args, small_sources, tokenizer=tokenizer).train()
        return tmp_path / name

    full = load_file(str(run("full", 1.0) / "model.safetensors"))
    half_dir = run("half", 0.5)
    half = load_file(str(half_dir / "model.safetensors"))
    moved = 0
    for key, value in half.items():
        if key in init and value.is_floating_point():
            torch.testing.assert_close(value, init[key] + 0.5 * (full[key] - init[key]))
            moved += not torch.equal(full[key], init[key])
    assert moved > 10
    meta = json.loads((half_dir / "fewshot_nlp.json").read_text())
    assert meta["weight_interpolation"] == 0.5 and meta["meta_training"]["steps"] == 3
    assert "Saved at weight interpolation 0.5" in (half_dir / "README.md").read_text()
    lora = run("lora", 0.0, adapt_scope="lora", merge_lora_on_save=False)
    adapter = load_file(str(lora / "adapter_model.safetensors"))
    b = [v for k, v in adapter.items() if "lora_B" in k]
    assert b and all(torch.count_nonzero(v) == 0 for v in b)
    with pytest.raises(ConfigError, match="weight_interpolation must be in"):
        tiny_meta_args(tmp_path / "x", weight_interpolation=1.5)


def test_making_a_trainer_neither_trains_nor_writes(tokenizer, data_dir, tmp_path):
    """Only ``train()`` writes: a model built in memory has its starting encoder kept in the
    run by ``train()``, not by ``MetaTrainer(...)``."""
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = MetaTrainer(
        model, tiny_meta_args(tmp_path / "run", max_steps=1), sources, tokenizer=tokenizer
    )
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert written == []
    for name, param in trainer.model.named_parameters():
        assert torch.equal(param, before[name]), name
    trainer.train()
    assert (tmp_path / "run" / "base_model" / "config.json").is_file()
