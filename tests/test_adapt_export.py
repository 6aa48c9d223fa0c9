import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from fewshot_nlp import ConfigError, DataError, TaskSource
from fewshot_nlp.classifier import adapt
from fewshot_nlp.classifier.record import AdaptationRecord
from fewshot_nlp.export import export
from fewshot_nlp.meta.trainer import MetaTrainer

from .conftest import tiny_meta_args, tiny_model


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory, tokenizer, data_dir):
    out = tmp_path_factory.mktemp("meta") / "run"
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(out, max_steps=2, inner_steps=2)
    MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer).train()
    return out


def few_shot(n_classes, per_class=2):
    return [
        (f"example {i} of topic {c} words", f"topic_{c}")
        for c in range(n_classes)
        for i in range(per_class)
    ]


def test_round_trip_logits_equal_plain_transformers(meta_run, tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = adapt(str(meta_run), few_shot(4))
    assert model.config.id2label == {i: f"topic_{i}" for i in range(4)}
    out = export(model, tokenizer, tmp_path / "clf")
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    batch = tokenizer(["what is topic 2", "another text"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval()(**batch).logits, loaded.eval()(**batch).logits, atol=1e-5, rtol=1e-5
        )


def test_export_loads_without_fewshot_nlp(meta_run, tokenizer, tmp_path):
    out = export(adapt(str(meta_run), few_shot(3)), tokenizer, tmp_path / "clf")
    code = (
        "import sys, json\n"
        "from transformers import AutoModelForSequenceClassification, pipeline\n"
        f"m = AutoModelForSequenceClassification.from_pretrained({str(out)!r})\n"
        f"p = pipeline('text-classification', model={str(out)!r})\n"
        "r = p('example 1 of topic 1 words')\n"
        "assert 'fewshot_nlp' not in sys.modules\n"
        "print(json.dumps([sorted(m.config.id2label.values()), r[0]['label']]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    labels, predicted = json.loads(result.stdout.strip().splitlines()[-1])
    assert labels == ["topic_0", "topic_1", "topic_2"] and predicted in labels


def test_model_card_yaml(meta_run, tokenizer, tmp_path):
    model = adapt(str(meta_run), few_shot(2))
    out = export(model, tokenizer, tmp_path / "clf", eval_results={"accuracy": 0.9})
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert {"fewshot-nlp", "maml"} <= set(meta["tags"])
    assert "base_model" not in meta  # a local folder's path is never published
    assert meta["datasets"] == ["trec"]
    assert meta["model-index"][0]["results"][0]["metrics"][0] == {"type": "accuracy", "value": 0.9}
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    body = text.split("---", 2)[2]
    assert "Meta-trained with MAML for" in body and "- accuracy: 0.9" in body
    assert "Labels: `topic_0`, `topic_1`" in body and "{{" not in body and "{%" not in body


def test_adaptation_record_survives_export_and_reload(meta_run, tokenizer, tmp_path):
    """The record travels in config.json: a reloaded export still says how it was made, and
    its card can be written again from it."""
    from transformers import AutoModelForSequenceClassification

    from fewshot_nlp.model_card import model_card

    model = adapt(str(meta_run), few_shot(3, per_class=2))
    record = AdaptationRecord.of(model)
    assert record.classes == 3 and record.examples == 6 and record.meta_trained
    out = export(model, tokenizer, tmp_path / "clf")
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert AdaptationRecord.of(loaded) == record
    card = model_card(
        loaded, record=AdaptationRecord.of(loaded), class_memory=model.fewshot_nlp_classes
    )
    assert card == (out / "README.md").read_text()
    assert AdaptationRecord.of(AutoModelForSequenceClassification.from_pretrained(meta_run)) is None


def test_many_classes_and_chunked_support(meta_run):
    """150 classes through support chunks of 32 give the head of one whole-support pass."""
    chunked = adapt(str(meta_run), few_shot(150, per_class=1), support_batch_size=32)
    whole = adapt(str(meta_run), few_shot(150, per_class=1), support_batch_size=1000)
    assert chunked.config.num_labels == 150
    assert chunked.config.id2label[149] == "topic_149"
    for a, b in zip(chunked.classifier.parameters(), whole.classifier.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_lora_merged_equals_unmerged(tokenizer, tmp_path):
    from fewshot_nlp import apply_lora, default_lora_config

    base = tiny_model()
    cfg = default_lora_config(r=2, target_modules=["query", "value"])
    cfg.init_lora_weights = False
    peft_model = apply_lora(base, cfg)
    peft_model.eval()
    merged = adapt(peft_model, few_shot(3), tokenizer=tokenizer, merge_lora=False)
    batch = tokenizer(["some text here"], return_tensors="pt")
    with torch.no_grad():
        unmerged_logits = merged(**batch).logits
        merged_logits = merged.merge_and_unload()(**batch).logits
    torch.testing.assert_close(unmerged_logits, merged_logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="unmerged PEFT model"):
        export(apply_lora(tiny_model(), cfg), tokenizer, tmp_path / "clf")


def test_plain_checkpoint_warns(tokenizer, tmp_path):
    plain = tiny_model()
    plain.save_pretrained(tmp_path / "plain")
    tokenizer.save_pretrained(tmp_path / "plain")
    with pytest.warns(UserWarning, match="not a meta-trained"):
        model = adapt(str(tmp_path / "plain"), few_shot(2))
    assert model.config.num_labels == 2


def test_bad_inputs(meta_run, tokenizer, tmp_path):
    with pytest.raises(DataError, match="at least 2 labels"):
        adapt(str(meta_run), [("a", "x"), ("b", "x")])
    with pytest.warns(UserWarning, match="integers without names"):
        model = adapt(str(meta_run), [("a b", 0), ("c d", 1)])
    assert model.config.id2label == {0: "0", 1: "1"}
    with pytest.warns(UserWarning, match="truncated"):
        adapt(str(meta_run), [("word " * 50, "a"), ("b", "b")], max_length=8)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    with pytest.raises(ConfigError, match="overwrite"):
        export(model, tokenizer, tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep"


def test_push_without_token_reports_failure(meta_run, tokenizer, tmp_path, monkeypatch, hub_online):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    model = adapt(str(meta_run), few_shot(2))
    with pytest.raises(ConfigError, match="No Hub token"):
        export(model, tokenizer, tmp_path / "clf", push_to_hub=True, hub_model_id="me/clf")


def test_cli_adapt_and_predict(meta_run, tmp_path, capsys):
    from fewshot_nlp.commands import main

    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(json.dumps({"utterance": t, "intent": y}) for t, y in few_shot(3)))
    out = tmp_path / "clf"
    assert (
        main(
            [
                "adapt",
                "--model",
                str(meta_run),
                "--train-file",
                str(data),
                "--text-column",
                "utterance",
                "--label_column",
                "intent",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()  # the adapt command's own lines
    text = "example 0 of topic 1 words"
    assert main(["predict", "--model", str(out), "--top_k", "1", text]) == 0
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        logits = loaded(**AutoTokenizer.from_pretrained(out)(text, return_tensors="pt")).logits
    expected = loaded.config.id2label[int(logits.argmax())]
    score = logits.softmax(-1).max().item()
    assert capsys.readouterr().out.strip() == f"{text!r}: {expected} ({score:.3f})"
    assert (
        main(
            ["adapt", "--model", str(meta_run), "--train-file", str(data), "--output-dir", str(out)]
        )
        == 2
    )


@pytest.fixture
def hub_online(monkeypatch):
    """The suite runs offline; the push tests only talk to a loopback server."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


HUB_TOKEN = "hf_loopbacktesttoken123"


def export_and_push(model, tokenizer, folder, **export_kwargs):
    """Export ``model`` and push it to a loopback Hub; returns (folder, FakeHub)."""
    from .hub_server import FakeHub

    with FakeHub(HUB_TOKEN) as hub:
        out = export(
            model,
            tokenizer,
            folder,
            push_to_hub=True,
            hub_model_id="me/clf",
            token=HUB_TOKEN,
            endpoint=hub.url,
            **export_kwargs,
        )
    return out, hub


def test_push_to_hub_uploads_the_exported_folder(meta_run, tokenizer, tmp_path, capsys, hub_online):
    token = HUB_TOKEN
    out, hub = export_and_push(adapt(str(meta_run), few_shot(2)), tokenizer, tmp_path / "clf")
    received = hub.repos["me/clf"]
    local = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert received == local and "model.safetensors" in received
    assert not hub.unknown
    assert hub.validated and hub.validated[0]["pipeline_tag"] == "text-classification"
    printed = capsys.readouterr()
    assert token not in printed.out + printed.err
    assert all(token.encode() not in data for data in local.values())


def test_push_offline_is_a_clear_error(meta_run, tokenizer, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from fewshot_nlp import FewShotError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = adapt(str(meta_run), few_shot(2))
    with pytest.raises(FewShotError, match="HF_HUB_OFFLINE is set"):
        export(
            model,
            tokenizer,
            tmp_path / "clf",
            push_to_hub=True,
            hub_model_id="me/clf",
            token="hf_x",
            endpoint="http://127.0.0.1:9",
        )


def test_push_with_bad_token_fails_loudly(meta_run, tokenizer, tmp_path, hub_online):
    from fewshot_nlp import FewShotError

    from .hub_server import FakeHub

    model = adapt(str(meta_run), few_shot(2))
    with FakeHub("hf_right") as hub, pytest.raises(FewShotError, match="invalid") as error:
        export(
            model,
            tokenizer,
            tmp_path / "clf",
            push_to_hub=True,
            hub_model_id="me/clf",
            token="hf_wrong",
            endpoint=hub.url,
        )
    assert "hf_wrong" not in str(error.value)
    assert hub.repos == {}


@pytest.fixture(scope="module")
def lora_meta_run(tmp_path_factory, tokenizer, data_dir):
    out = tmp_path_factory.mktemp("meta-lora") / "run"
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(out, max_steps=2, adapt_scope="lora", inner_learning_rate=0.5)
    MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer).train()
    return out


LOAD_ADAPTER_EXPORT = """
import json, sys
import torch
from peft import AutoPeftModelForSequenceClassification, PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

path, texts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(path)
batch = tokenizer(texts, return_tensors="pt", padding=True)
peft_model = AutoPeftModelForSequenceClassification.from_pretrained(path).eval()
plain = AutoModelForSequenceClassification.from_pretrained(path).eval()
with torch.no_grad():
    peft_logits = peft_model(**batch).logits
    plain_logits = plain(**batch).logits
prediction = pipeline("text-classification", model=path)(texts[0])[0]["label"]
assert "fewshot_nlp" not in sys.modules
print(json.dumps({
    "is_peft": isinstance(peft_model, PeftModel),
    "lora_layers": sum("lora_A" in n for n, _ in peft_model.named_parameters()),
    "nested": sum("base_layer.base_layer" in n for n, _ in peft_model.named_parameters()),
    "labels": [peft_model.config.id2label[i] for i in range(peft_model.config.num_labels)],
    "peft_logits": peft_logits.tolist(),
    "plain_logits": plain_logits.tolist(),
    "prediction": prediction,
}))
"""


def test_keep_adapter_loads_with_auto_peft_model(lora_meta_run, tokenizer, tmp_path):
    """The adapter folder loads in a process without fewshot_nlp, with the user's labels."""
    model = adapt(str(lora_meta_run), few_shot(3), merge_lora=False)
    assert hasattr(model, "peft_config")
    out = export(model, tokenizer, tmp_path / "clf", keep_adapter=True)
    texts = ["example 1 of topic 1 words", "a different text"]
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ADAPTER_EXPORT, str(out), json.dumps(texts)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # transformers attaches the embedded adapter before peft does: still one adapter, once.
    assert loaded["is_peft"] and loaded["nested"] == 0
    assert loaded["lora_layers"] == sum("lora_A" in n for n, _ in model.named_parameters()) > 0
    assert loaded["labels"] == ["topic_0", "topic_1", "topic_2"]
    assert loaded["prediction"] in loaded["labels"]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model.eval()(**batch).logits
    for key in ("peft_logits", "plain_logits"):
        torch.testing.assert_close(torch.tensor(loaded[key]), expected, atol=1e-5, rtol=1e-5)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["task_type"] == "SEQ_CLS"
    assert adapter_config["modules_to_save"][0] == "classifier"
    assert len(set(adapter_config["modules_to_save"])) == len(adapter_config["modules_to_save"])
    assert adapter_config["base_model_name_or_path"] == str(out.resolve())
    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert card["library_name"] == "peft" and "lora" in card["tags"]


def test_keep_adapter_is_unmerged_and_matches_the_merged_export(lora_meta_run, tokenizer, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    adapted = adapt(str(lora_meta_run), few_shot(3), merge_lora=False)
    adapter_dir = export(adapted, tokenizer, tmp_path / "adapter", keep_adapter=True)
    merged_dir = export(adapted.merge_and_unload(), tokenizer, tmp_path / "merged")
    base_weights = load_file(str(adapter_dir / "model.safetensors"))
    merged_weights = load_file(str(merged_dir / "model.safetensors"))
    query = "bert.encoder.layer.0.attention.self.query.weight"
    # The meta-trained LoRA update lives in the adapter, not in the base weights.
    assert not torch.allclose(base_weights[query], merged_weights[query])
    adapter = load_file(str(adapter_dir / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())
    assert any("classifier" in k for k in adapter)
    batch = tokenizer(["what is topic 2"], return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    via_adapter = AutoModelForSequenceClassification.from_pretrained(adapter_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            via_adapter(**batch).logits, merged(**batch).logits, atol=1e-5, rtol=1e-5
        )


def test_keep_adapter_bad_inputs(meta_run, lora_meta_run, tokenizer, tmp_path):
    from fewshot_nlp.commands import main

    with pytest.raises(ConfigError, match="needs an unmerged LoRA model"):
        export(adapt(str(meta_run), few_shot(2)), tokenizer, tmp_path / "a", keep_adapter=True)
    with pytest.raises(ConfigError, match="keep_adapter=True"):
        export(adapt(str(lora_meta_run), few_shot(2), merge_lora=False), tokenizer, tmp_path / "b")
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in few_shot(2)))
    argv = ["adapt", "--model", str(meta_run), "--train-file", str(data), "--keep-adapter"]
    assert main([*argv, "--output-dir", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_cli_keep_adapter_then_predict(lora_meta_run, tmp_path, capsys):
    from fewshot_nlp.commands import main

    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in few_shot(3)))
    out = tmp_path / "clf"
    argv = ["adapt", "--model", str(lora_meta_run), "--train-file", str(data)]
    assert main([*argv, "--output-dir", str(out), "--keep-adapter"]) == 0
    assert (out / "adapter_model.safetensors").is_file() and (out / "model.safetensors").is_file()
    capsys.readouterr()  # the adapt command's own lines
    text = "example 0 of topic 1 words"
    assert main(["predict", "--model", str(out), "--top_k", "1", text]) == 0
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        logits = loaded(**AutoTokenizer.from_pretrained(out)(text, return_tensors="pt")).logits
    expected = loaded.config.id2label[int(logits.argmax())]
    score = logits.softmax(-1).max().item()
    assert capsys.readouterr().out.strip() == f"{text!r}: {expected} ({score:.3f})"


def test_push_keep_adapter_points_the_adapter_at_the_repo(
    lora_meta_run, tokenizer, tmp_path, hub_online
):
    model = adapt(str(lora_meta_run), few_shot(2), merge_lora=False)
    out, hub = export_and_push(model, tokenizer, tmp_path / "clf", keep_adapter=True)
    received = hub.repos["me/clf"]
    local = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert set(received) == set(local) and "adapter_model.safetensors" in received
    uploaded_config = json.loads(received.pop("adapter_config.json"))
    local_config = json.loads(local.pop("adapter_config.json"))
    assert uploaded_config["base_model_name_or_path"] == "me/clf"
    assert {**uploaded_config, "base_model_name_or_path": str(out.resolve())} == local_config
    assert received == local


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_keep_adapter_with_a_two_layer_head(family, tokenizer, tmp_path):
    """peft saves RoBERTa-style heads (dense + out_proj) whole; their LoRA is merged into it."""
    from peft import AutoPeftModelForSequenceClassification

    from fewshot_nlp import apply_lora, default_lora_config

    config = default_lora_config(r=2)
    config.init_lora_weights = False  # non-zero LoRA everywhere, classifier.dense included
    model = apply_lora(tiny_model(family), config)
    adapted = adapt(model, few_shot(3), tokenizer=tokenizer, merge_lora=False)
    out = export(adapted, tokenizer, tmp_path / "clf", keep_adapter=True)
    loaded = AutoPeftModelForSequenceClassification.from_pretrained(out).eval()
    assert loaded.config.id2label == {0: "topic_0", 1: "topic_1", 2: "topic_2"}
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"][0] == (
        "classifier"
    )
    batch = tokenizer(["example 1 of topic 1 words"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(**batch).logits, adapted.eval()(**batch).logits, atol=1e-4, rtol=1e-4
        )


def test_convex_head_with_label_names_exports_what_it_predicts(meta_run, tokenizer, tmp_path):
    """A logistic-regression head on normalised features, label names as examples: the export
    is still a plain nn.Linear that predicts what the adapted model predicted."""
    from transformers import AutoModelForSequenceClassification

    train = few_shot(4, per_class=3)
    model = adapt(str(meta_run), train, adapt_head_init="logreg", label_names="always")
    record = AdaptationRecord.of(model)
    assert record.adapt_head_init == "logreg" and record.label_names_used is True
    out = export(model, tokenizer, tmp_path / "clf")
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = tokenizer([t for t, _ in train] + ["topic 3"], return_tensors="pt", padding=True)
    with torch.no_grad():
        ours, theirs = model.eval()(**batch).logits, loaded(**batch).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert "label's name" in (out / "README.md").read_text()


def test_inner_steps_chosen_by_cross_validation(meta_run, tokenizer, tmp_path):
    model = adapt(str(meta_run), few_shot(3, per_class=4), adapt_step_candidates=[0, 1, 2])
    record = AdaptationRecord.of(model)
    scores = record.cv_accuracy
    assert set(scores) == {0, 1, 2}
    best = max(scores.values())
    assert record.inner_steps == min(s for s, v in scores.items() if v == best)
    card = (export(model, tokenizer, tmp_path / "a") / "README.md").read_text()
    assert "chosen by cross-validation" in card
    # Steps that blow up (non-finite loss) lose the vote instead of crashing the adaptation.
    wrecked = adapt(
        str(meta_run),
        few_shot(3, per_class=4),
        adapt_step_candidates=[0, 2],
        inner_learning_rate=1e30,
    )
    assert AdaptationRecord.of(wrecked).cv_accuracy[2] == 0.0
    assert AdaptationRecord.of(wrecked).inner_steps == 0


def test_cross_validation_falls_back_on_one_shot(meta_run, tokenizer, tmp_path):
    with pytest.warns(UserWarning, match="cross-validation needs >= 2 examples per class"):
        model = adapt(str(meta_run), few_shot(3, per_class=1), adapt_step_candidates=[0, 1])
    record = AdaptationRecord.of(model)
    assert record.inner_steps == 2  # the meta-trained number (meta_run: inner_steps=2)
    card = (export(model, tokenizer, tmp_path / "b") / "README.md").read_text()
    assert "Cross-validation fell back" in card


def test_cards_name_the_base_by_hub_id_never_by_local_path(minilm_path, tmp_path):
    from fewshot_nlp.hub import hub_model_id
    from fewshot_nlp.model_card import meta_model_card

    assert hub_model_id(minilm_path) == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_model_id(str(tmp_path)) is None
    assert hub_model_id("/home/me/runs/meta/warmed_base") is None
    assert hub_model_id("org/encoder") == "org/encoder"
    info = {
        "base_encoder": minilm_path,
        "maml": {"adapt_scope": "lora", "inner_steps": 1, "head_init": "cosine"},
        "meta_training": {
            "steps": 3,
            "sources": [{"name": "snips", "examples": 10, "classes": 7, "probability": 1.0}],
        },
    }
    card = meta_model_card(info)
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["snips"] and str(tmp_path) not in card
    assert "| snips | 10 | 7 | 1.000 |" in card


def test_save_pretrained_writes_the_meta_models_card(meta_run, tmp_path):
    from fewshot_nlp import FewShotModel

    out = FewShotModel.from_pretrained(str(meta_run)).save_pretrained(tmp_path / "copy")
    card = (out / "README.md").read_text()
    assert card == (meta_run / "README.md").read_text()
    assert "meta-steps of first-order MAML" in card and "not a classifier yet" in card
