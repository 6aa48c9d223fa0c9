"""A user's files are never lost, and a bad request is refused before any work (issue 22).

Each test reproduces a case that lost or corrupted data, or reported a false success, and
asserts what must hold instead: the files still there byte for byte, exit code 2, a message
that says what to do.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fewshot_nlp import ConfigError
from fewshot_nlp.classifier import adapt
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.export import export
from fewshot_nlp.meta.maml import MAML
from fewshot_nlp.meta.model import FewShotModel
from fewshot_nlp.paths import WRITTEN_FILE, atomic_file

from .conftest import FEW, tiny_model


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` with the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- 1. meta-train output_dir
def test_meta_train_refuses_a_folder_with_a_users_files(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "README.md").write_text("my notes")
    (user / "config.json").write_text("{}")
    before = snapshot(user)
    # The model does not exist: the output folder is refused before anything is loaded.
    argv = ["meta-train", "--model_name_or_path", str(tmp_path / "none"), "--output_dir"]
    assert cli_main([*argv, str(user)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert cli_main([*argv, str(user), "--overwrite_output_dir"]) == 2
    assert "not written by fewshot-nlp" in capsys.readouterr().err
    assert snapshot(user) == before


def test_meta_train_refuses_an_exported_classifier(classifier, tmp_path, capsys):
    before = snapshot(classifier)
    argv = ["meta-train", "--model_name_or_path", str(tmp_path / "none")]
    assert cli_main([*argv, "--output_dir", str(classifier)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert snapshot(classifier) == before


def test_meta_train_overwrite_starts_over_but_keeps_a_users_file(tokenizer, data_dir, tmp_path):
    def train(args):
        return MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer)

    from fewshot_nlp import TaskSource
    from fewshot_nlp.meta.trainer import MetaTrainer

    from .conftest import tiny_meta_args

    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    out = tmp_path / "run"
    train(tiny_meta_args(out, max_steps=2, save_steps=1)).train()
    assert (out / "checkpoint-2").is_dir() and "checkpoint-1" in (out / WRITTEN_FILE).read_text()
    # Starting over removes the previous run's own entries (its checkpoints), nothing else.
    args = tiny_meta_args(out, max_steps=1, overwrite_output_dir=True)
    train(args).train()
    assert not (out / "checkpoint-2").exists() and (out / "fewshot_nlp.json").is_file()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="did not write: notes.txt"):
        train(args)
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- 2. adapt --overwrite
def test_adapt_overwrite_never_removes_the_model_the_cwd_or_a_users_file(
    meta_model, train_file, tmp_path, monkeypatch, capsys
):
    runs = meta_model.parent
    (runs / "notes.txt").write_text("mine")
    before = snapshot(runs)
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file), "--overwrite"]
    for output_dir, message in (
        (runs, "contains the model being read"),
        (meta_model, "is the model being read"),
    ):
        assert cli_main([*argv, "--output_dir", str(output_dir)]) == 2
        assert message in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "keep.txt").write_text("mine")
    for output_dir in ("sub/..", ".", str(tmp_path.parent)):
        assert cli_main([*argv, "--output_dir", output_dir]) == 2
        assert "give a new folder for the output" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert snapshot(runs) == before

    # Our own export is replaced; once a user's file is in it, it is refused.
    out = tmp_path / "clf"
    assert cli_main([*argv[:-1], "--output_dir", str(out)]) == 0
    assert cli_main([*argv, "--output_dir", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    assert cli_main([*argv, "--output_dir", str(out)]) == 2
    assert "did not write: notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_export_is_readable_as_the_umask_says(classifier):
    mask = os.umask(0)
    os.umask(mask)
    assert (classifier.stat().st_mode & 0o777) == 0o777 & ~mask
    for path in classifier.iterdir():
        assert (path.stat().st_mode & 0o777) == 0o666 & ~mask, path.name


PLACES = ["out", "parent", "model", "cwd"]
LAYOUTS = ["new", "model", "model_parent", "cwd", "cwd_parent", "dotdot", "inside_model"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.sampled_from(LAYOUTS),
    previous_export=st.booleans(),
    user_files=st.lists(
        st.tuples(st.sampled_from(PLACES), st.text("abcxyz", min_size=1)),
        max_size=4,
    ),
)
def test_overwrite_removes_nothing_it_did_not_write(
    tokenizer, meta_model, tmp_path_factory, layout, previous_export, user_files
):
    """Random user files around --output_dir and --model; whatever the layout, an export with
    overwrite=True either writes its folder or is refused, and every user file survives."""
    root = tmp_path_factory.mktemp("prop")
    model_dir = root / "runs" / "meta"
    model_dir.parent.mkdir()
    shutil.copytree(meta_model, model_dir)
    cwd = root / "work"
    cwd.mkdir()
    out = {
        "new": root / "out",
        "model": model_dir,
        "model_parent": model_dir.parent,
        "cwd": cwd,
        "cwd_parent": root,
        "dotdot": cwd / "sub" / "..",
        "inside_model": model_dir / "tokenizer_dir",
    }[layout]
    (cwd / "sub").mkdir()
    if previous_export and layout == "new":
        export(adapt(tiny_model(), FEW, tokenizer=tokenizer), tokenizer, out)
    places = {"out": out, "parent": out.resolve().parent, "model": model_dir, "cwd": cwd}
    for where, name in user_files:
        folder = places[where]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"user-{name}.txt").write_text(name)
    users = {p: p.read_text() for p in root.rglob("user-*.txt")}
    model_before = snapshot(model_dir)
    classifier = adapt(str(model_dir), FEW)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        export(classifier, tokenizer, out, overwrite=True)
    except ConfigError:
        pass
    finally:
        os.chdir(old)
    assert {p: p.read_text() for p in users} == users
    after = snapshot(model_dir)  # a new folder inside the model may be added, nothing changed
    assert {name: after.get(name) for name in model_before} == model_before
    assert not list(root.rglob(".tmp-*")) and not list(root.rglob(".old-*"))


# ---------------------------------------------------------------- 3. predict output files
def test_atomic_files_of_two_writers_never_mix(tmp_path):
    target = tmp_path / "out.jsonl"
    with atomic_file(target) as first, atomic_file(target) as second:
        assert first.name != second.name  # each process its own temporary file
        first.write("a\n" * 3)
        second.write("b\n" * 5)
    assert target.read_text() in ("a\n" * 3, "b\n" * 5)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write("half")
        raise RuntimeError
    assert target.read_text() in ("a\n" * 3, "b\n" * 5)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_sigterm_during_predict_leaves_no_file_behind(classifier, tmp_path):
    texts = tmp_path / "in.txt"
    texts.write_text("\n".join(f"text number {i} about something" for i in range(40_000)))
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "fewshot_nlp.commands", "predict", "--model", str(classifier)]
    command += ["--input_file", str(texts), "--output_file", str(out), "--batch_size", "8"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.jsonl.*.tmp")) and time.time() < deadline:
        if child.poll() is not None:
            break
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.jsonl.*.tmp")), child.communicate()[1][-2000:]
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


# ---------------------------------------------------------------- 4-5. false results
def test_predict_refuses_a_meta_model(meta_model, capsys):
    assert cli_main(["predict", "--model", str(meta_model), "a text"]) == 2
    err = capsys.readouterr().err
    assert "is a meta-trained run, not a classifier" in err and "fewshot-nlp adapt" in err


@pytest.mark.parametrize(
    "flag,value,message",
    [
        (
            "--inner_learning_rate",
            "nan",
            "inner_learning_rate must be a finite number > 0, got nan",
        ),
        ("--inner_learning_rate", "-1", "inner_learning_rate must be a finite number > 0"),
        ("--max_length", "0", "max_length must be >= 3"),
        ("--inner_steps", "-1", "inner_steps must be >= 0"),
    ],
)
def test_adapt_refuses_bad_settings_before_loading(
    flag, value, message, meta_model, train_file, tmp_path, capsys
):
    out = tmp_path / "o"
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file)]
    assert cli_main([*argv, "--output_dir", str(out), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match=message.split(",")[0]):
        adapt("no/such/model", FEW, **{flag.lstrip("-"): float(value)})


def test_non_finite_adapted_weights_are_never_exported(tokenizer):
    import torch

    from fewshot_nlp.classifier.adaptation import adapted_copy
    from fewshot_nlp.errors import TrainingError

    run = FewShotModel(MAML(tiny_model()), tokenizer)
    fast = {"head.weight": torch.full((2, 16), float("nan")), "head.bias": torch.zeros(2)}
    with pytest.raises(TrainingError, match="non-finite weights"):
        adapted_copy(run, fast, ["a", "b"])


# ---------------------------------------------------------------- 6-10. checked first
def test_output_file_folder_is_made_first_and_existing_files_need_overwrite(
    classifier, tmp_path, capsys
):
    out = tmp_path / "new" / "deeper" / "preds.jsonl"
    texts = tmp_path / "in.txt"
    texts.write_text("one\ntwo\n")
    argv = ["predict", "--model", str(classifier), "--input_file", str(texts)]
    assert cli_main([*argv, "--output_file", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    assert cli_main([*argv, "--output_file", str(out)]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert cli_main([*argv, "--output_file", str(out), "--overwrite"]) == 0
    inside = classifier / "preds.jsonl"
    assert cli_main([*argv, "--output_file", str(inside)]) == 2
    assert "inside the model being read" in capsys.readouterr().err


def test_evaluate_checks_every_shot_count_before_the_first_episode(
    classifier, data_dir, tmp_path, monkeypatch, capsys
):
    import fewshot_nlp.evaluation.protocols as evaluation

    def never(*args, **kwargs):
        raise AssertionError("an episode ran before the shot counts were checked")

    monkeypatch.setattr(evaluation, "_predict_episode", never)
    argv = ["evaluate", "--model", str(classifier), "--data_dir", str(data_dir)]
    argv += ["--dataset", "trec", "--k_shot", "1", "5000", "--method", "prototype"]
    assert cli_main([*argv, "--output_file", str(tmp_path / "r" / "r.json")]) == 2
    assert "k_shot + q_query = 5015" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        ([], "push_to_hub needs hub_model_id"),
        (["--hub_model_id", "not a valid/id!!"], "is not a valid repository id"),
        (["--hub_model_id", "me/clf"], "HF_HUB_OFFLINE is set"),
    ],
)
def test_push_problems_are_found_before_adapting(
    extra, message, meta_model, train_file, tmp_path, monkeypatch, capsys
):
    import huggingface_hub.constants

    import fewshot_nlp.classifier.adaptation as adapt_module

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(adapt_module, "training_source", lambda *a, **k: pytest.fail("adapted"))
    out = tmp_path / "o"
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file)]
    assert cli_main([*argv, "--output_dir", str(out), "--push_to_hub", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_mistyped_flag_is_a_usage_error_naming_the_closest(meta_model, train_file, capsys):
    argv = ["adapt", "--model", str(meta_model), "--train_file", str(train_file)]
    assert cli_main([*argv, "--output_dir", "o", "--inner_learnig_rate", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown flag --inner_learnig_rate (did you mean --inner_learning_rate?)" in err
    # the spelling before MAMLConfig's names were used everywhere points to the new one
    assert cli_main([*argv, "--output_dir", "o", "--steps", "1"]) == 2
    assert "unknown flag --steps (did you mean --inner_steps?)" in capsys.readouterr().err
    assert "fewshot-nlp adapt --help" in err
