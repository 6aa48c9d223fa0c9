"""ONNX deployment: every kind of export we make runs in onnxruntime with the logits of the
PyTorch export (fp32) and nearly always its labels (int8); `predict --onnx` needs no torch;
transformers.js reads the same folder; bad requests are refused before anything is written."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fewshot_nlp import ConfigError
from fewshot_nlp.commands import main as cli_main

from .conftest import tiny_model

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "scripts" / "onnx"
TEXTS = [
    "hi",
    "will it rain today in the north of the country this weekend",
    "play some jazz",
    "what is my balance",
    "a much longer text about nothing in particular that pads the others a lot",
]
SINGLE = [
    ("will it rain today", "weather"),
    ("is it sunny tomorrow", "weather"),
    ("play some jazz", "music"),
    ("next song please", "music"),
    ("what is my balance", "banking"),
    ("my card was declined", "banking"),
]
MULTI = [
    ("will it rain today and play jazz", ["weather", "music"]),
    ("is it sunny tomorrow", ["weather"]),
    ("next song please", ["music"]),
    ("turn the music up and tell me the forecast", ["music", "weather"]),
]


def mean_run(tmp_path, tokenizer) -> Path:
    from fewshot_nlp.modeling.pooling import mean_pooling_classifier

    folder = tmp_path / "mean"
    model, tok = mean_pooling_classifier(
        tiny_model("bert", intermediate_size=64),
        tokenizer.__class__.from_pretrained(tokenizer.name_or_path),
    )
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tokenizer):
    """The kinds of export: a [CLS]-pooling classifier, a mean-pooling one with a rejection
    label (its extra normalising layer), a grown one, and a multi-label one."""
    from transformers import AutoTokenizer

    from fewshot_nlp.classifier import AdaptationArguments, adapt, grow
    from fewshot_nlp.export import export
    from fewshot_nlp.multilabel import adapt_multilabel

    root = tmp_path_factory.mktemp("exports")
    bert = root / "bert"
    tiny_model("bert", num_labels=2).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    mean = mean_run(root, tokenizer)
    tok = AutoTokenizer.from_pretrained(mean)
    out = {}
    with pytest.warns(UserWarning):
        out["cls"] = export(adapt(str(bert), SINGLE), tokenizer, root / "cls")
        args = AdaptationArguments(unknown_label="none_of_these", adapt_head_init="logreg")
        out["rejection"] = export(adapt(str(mean), SINGLE, args), tok, root / "rejection")
        out["multi"] = export(adapt_multilabel(str(mean), MULTI), tok, root / "multi")
    grown = grow(out["cls"], [("buy a plane ticket", "travel"), ("book a flight", "travel")])
    out["grown"] = export(grown, tokenizer, root / "grown")
    return out


def torch_logits(folder: Path) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in TEXTS])


@pytest.mark.parametrize("kind", ["cls", "rejection", "grown", "multi"])
def test_every_export_runs_in_onnxruntime_as_in_pytorch(exports, kind):
    from fewshot_nlp.deploy import OnnxClassifier, export_onnx

    folder = exports[kind]
    out = export_onnx(folder, quantize="int8")
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.onnx", "model_quantized.onnx"]
    expected = torch_logits(folder)
    fp32 = OnnxClassifier(folder).logits(TEXTS, batch_size=4)
    np.testing.assert_allclose(fp32, expected, atol=1e-4, rtol=1e-4)
    int8 = OnnxClassifier(folder, "int8").logits(TEXTS, batch_size=4)
    if np.ptp(fp32) > 1e-3:  # a random tiny [CLS] head scores every text alike: no signal
        assert np.abs(int8 - fp32).max() <= 0.05 * np.ptp(fp32)
        assert (int8.argmax(-1) == expected.argmax(-1)).mean() >= 0.8
    card = (folder / "README.md").read_text()
    assert "## ONNX" in card and "opset 17" in card and "`onnx.checker` passed" in card
    assert "onnx" in json.loads((folder / "fewshot_nlp_written.json").read_text())["entries"]


def test_a_second_export_replaces_only_with_overwrite_and_only_ours(exports, tmp_path):
    from fewshot_nlp.deploy import OnnxArguments, export_onnx

    folder = tmp_path / "copy"
    shutil.copytree(exports["cls"], folder)
    shutil.rmtree(folder / "onnx", ignore_errors=True)
    export_onnx(folder)
    with pytest.raises(ConfigError, match="--overwrite"):
        export_onnx(folder)
    export_onnx(folder, OnnxArguments(overwrite=True))
    theirs = tmp_path / "theirs"
    shutil.copytree(exports["cls"], theirs)
    shutil.rmtree(theirs / "onnx", ignore_errors=True)
    (theirs / "onnx").mkdir()
    (theirs / "onnx" / "mine.txt").write_text("a user's file")
    with pytest.raises(ConfigError, match="did not write it"):
        export_onnx(theirs, OnnxArguments(overwrite=True))
    assert (theirs / "onnx" / "mine.txt").read_text() == "a user's file"


def test_meta_runs_and_unmerged_adapters_are_refused(meta_model, tmp_path, capsys):
    assert cli_main(["export-onnx", "--model", str(meta_model)]) == 2
    assert "is a meta-trained run: adapt it first" in capsys.readouterr().err
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "config.json").write_text("{}")
    (adapter / "adapter_config.json").write_text("{}")
    assert cli_main(["export-onnx", "--model", str(adapter)]) == 2
    assert "unmerged LoRA adapter" in capsys.readouterr().err
    assert not (adapter / "onnx").exists()


def test_predict_onnx_runs_without_torch(exports, tmp_path):
    """The ONNX route of `predict` in a process where torch cannot be imported: the same
    labels and scores as the PyTorch route."""
    folder = exports["multi"]
    if not (folder / "onnx" / "model.onnx").is_file():
        from fewshot_nlp.deploy import export_onnx

        export_onnx(folder, quantize="int8")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    plain, onnx = tmp_path / "plain.jsonl", tmp_path / "onnx.jsonl"
    base = ["predict", "--model", str(folder), "--input_file", str(texts)]
    assert cli_main([*base, "--output_file", str(plain)]) == 0
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from fewshot_nlp.commands import main\n"
        f"code = main({[*base, '--onnx', 'fp32', '--output_file', str(onnx)]!r})\n"
        "assert sys.modules['torch'] is None\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    for a, b in zip(plain.read_text().splitlines(), onnx.read_text().splitlines()):
        a, b = json.loads(a), json.loads(b)
        assert a["labels"] == b["labels"]
        assert b["scores"] == pytest.approx(a["scores"], abs=1e-4)


def test_transformers_js_gives_our_labels(exports):
    """transformers.js' text-classification pipeline on the same folder (the npm package is
    installed by scripts/setup.sh; nothing is fetched at run time)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: transformers.js cannot be checked here")
    if not (NODE_DIR / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.skip("@huggingface/transformers is not installed (scripts/setup.sh does it)")
    from fewshot_nlp.deploy import OnnxClassifier

    for kind in ("rejection", "multi"):
        folder = exports[kind]
        if not (folder / "onnx" / "model.onnx").is_file():
            from fewshot_nlp.deploy import export_onnx

            export_onnx(folder, quantize="int8")
        run = subprocess.run(
            ["node", str(NODE_DIR / "classify.mjs"), str(folder), *TEXTS],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        theirs = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        ours, _ = OnnxClassifier(folder).predict(TEXTS)
        for row, mine in zip(theirs, ours):
            assert row["scores"][0]["label"] == mine[0]["label"]
            scores = {s["label"]: s["score"] for s in row["scores"]}
            assert scores == pytest.approx({s["label"]: s["score"] for s in mine}, abs=1e-4)


def test_adapt_onnx_writes_both_graphs_and_predict_reads_int8(tmp_path, tokenizer, capsys):
    mean = mean_run(tmp_path, tokenizer)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in SINGLE))
    out = tmp_path / "clf"
    argv = ["adapt", "--model", str(mean), "--train_file", str(train), "--output_dir", str(out)]
    assert cli_main([*argv, "--onnx"]) == 0
    assert "ONNX written to" in capsys.readouterr().out
    assert (out / "onnx" / "model.onnx").is_file()
    assert (out / "onnx" / "model_quantized.onnx").is_file()
    assert cli_main(["predict", "--model", str(out), "--onnx", "int8", "play jazz"]) == 0
    assert capsys.readouterr().out.startswith("'play jazz': ")
    refused = ["adapt", "--model", str(mean), "--train_file", str(train), "--onnx"]
    assert cli_main([*refused, "--keep-adapter", "--output_dir", str(tmp_path / "x")]) == 2
    assert "--onnx needs one set of weights" in capsys.readouterr().err
