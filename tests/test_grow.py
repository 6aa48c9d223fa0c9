"""Adding and removing labels of an exported classifier without its old texts (issue 20)."""

import hashlib
import json

import pytest
import torch

from fewshot_nlp import ConfigError
from fewshot_nlp.classifier import adapt
from fewshot_nlp.classifier.class_memory import CLASS_MEMORY_FILE, ClassMemory
from fewshot_nlp.classifier.record import AdaptationRecord
from fewshot_nlp.commands import main
from fewshot_nlp.errors import DataError, ModelError
from fewshot_nlp.export import export
from fewshot_nlp.modeling.pooling import mean_pooling_classifier

from .conftest import tiny_model

TOPICS = {
    "weather": ["will it rain today", "how hot is it outside", "is it sunny tomorrow"],
    "music": ["play some jazz", "next song please", "turn the music up loud"],
    "banking": ["what is my balance", "move money to savings", "my card was declined"],
    "travel": ["book a flight to rome", "find me a hotel", "is my train late"],
}
OLD = [(t, y) for y in ("weather", "music", "banking") for t in TOPICS[y]]
NEW = [(t, "travel") for t in TOPICS["travel"]]
PROBE = [t for texts in TOPICS.values() for t in texts] + ["hello there", "what time is it"]


def mean_model(tokenizer):
    bert = tiny_model("bert", num_labels=3, intermediate_size=64)
    return mean_pooling_classifier(
        bert, tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    )


def exported(tokenizer, folder, data, **options):
    model, tok = mean_model(tokenizer)
    return export(adapt(model, data, tokenizer=tok, **options), tok, folder)


def logits_of(folder, texts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return model.config.id2label, torch.stack(
            [model(**tok(t, return_tensors="pt")).logits[0] for t in texts]
        )


def folder_digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_adding_a_label_gives_the_classifier_of_all_labels_at_once(tokenizer, tmp_path):
    """Head-only adaptation: old rows from the memory + new rows = the same rows, the same
    head (to the solver's tolerance), without the old texts."""
    both = exported(tokenizer, tmp_path / "both", OLD + NEW, label_names="never")
    old = exported(tokenizer, tmp_path / "old", OLD, label_names="never")
    before = folder_digest(old)
    grown = export(adapt(str(old), NEW), _tok(old), tmp_path / "grown")
    assert folder_digest(old) == before  # the source folder is only read
    labels, expected = logits_of(both, PROBE)
    grown_labels, got = logits_of(grown, PROBE)
    assert grown_labels == labels == {0: "weather", 1: "music", 2: "banking", 3: "travel"}
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=2e-3)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    memory = ClassMemory.load(grown)
    assert len(memory.labels) == len(OLD) + len(NEW)
    card = (grown / "README.md").read_text()
    assert "Grown from" in card and "`travel`" in card and "## Adding and removing labels" in card


def _tok(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_removing_labels_and_adding_shots(tokenizer, tmp_path):
    old = exported(tokenizer, tmp_path / "old", OLD + NEW)
    shrunk = adapt(str(old), remove_labels=["music"])
    assert list(shrunk.config.id2label.values()) == ["weather", "banking", "travel"]
    assert shrunk.fewshot_nlp_classes.label_names == ["weather", "banking", "travel"]
    more = adapt(str(old), [("what is the forecast for friday", "weather")])
    assert list(more.config.id2label.values()) == ["weather", "music", "banking", "travel"]
    record = AdaptationRecord.of(more)
    assert record.more_examples == ["weather"] and record.added_labels == []
    real = ~more.fewshot_nlp_classes.is_name
    assert int(real.sum()) == len(OLD) + len(NEW) + 1


def test_rejection_label_is_refitted_and_stays_last(tokenizer, tmp_path):
    old = exported(tokenizer, tmp_path / "old", OLD, unknown_label="none")
    grown = adapt(str(old), NEW)
    assert list(grown.config.id2label.values()) == ["weather", "music", "banking", "travel", "none"]
    assert AdaptationRecord.of(grown).rejection["label"] == "none"
    card = (export(grown, _tok(old), tmp_path / "grown") / "README.md").read_text()
    assert "## Out-of-scope rejection" in card and "Grown from" in card
    with pytest.raises(DataError, match="rejection label"):
        adapt(str(old), [("nothing at all", "none")])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda p: adapt(p, remove_labels=["nope"]), ConfigError, "no such label"),
        (lambda p: adapt(p, remove_labels=["weather", "music"]), ConfigError, "needs 2"),
        (lambda p: adapt(p, NEW, remove_labels=["travel"]), ConfigError, "no such label"),
        (lambda p: adapt(p), ConfigError, "Nothing to change"),
        (lambda p: adapt(p, NEW, inner_steps=2), ConfigError, "exported classifier"),
        (lambda p: adapt(p, labels=["travel"]), ConfigError, "a label list without examples"),
    ],
)
def test_bad_changes_are_refused_and_nothing_changes(tokenizer, tmp_path, call, error, match):
    old = exported(tokenizer, tmp_path / "old", OLD)
    before = folder_digest(old)
    with pytest.raises(error, match=match):
        call(str(old))
    assert folder_digest(old) == before


def test_an_export_without_memory_or_with_another_encoder_is_refused(tokenizer, tmp_path):
    old = exported(tokenizer, tmp_path / "old", OLD)
    other = exported(tokenizer, tmp_path / "other", OLD + NEW)
    (other / CLASS_MEMORY_FILE).unlink()
    with pytest.raises(ModelError, match="Re-adapt once"):
        adapt(str(other), NEW)
    # a memory copied from another model: its encoder differs
    from safetensors.torch import load_file, save_file

    weights = load_file(old / "model.safetensors")
    key = next(k for k in weights if "layer_norm_emb.weight" in k)
    weights[key] = weights[key] * 1.5
    save_file(weights, old / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match="not the one its"):
        adapt(str(old), NEW)


def test_cli_grows_and_shrinks(tokenizer, tmp_path, capsys):
    old = exported(tokenizer, tmp_path / "old", OLD)
    new = tmp_path / "new.jsonl"
    new.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in NEW))
    grown = tmp_path / "grown"
    assert (
        main(["adapt", "--model", str(old), "--train_file", str(new), "--output_dir", str(grown)])
        == 0
    )
    assert json.loads((grown / "config.json").read_text())["id2label"]["3"] == "travel"
    shrunk = tmp_path / "shrunk"
    args = ["adapt", "--model", str(grown), "--remove_labels", "music", "--output_dir", str(shrunk)]
    assert main(args) == 0
    labels = json.loads((shrunk / "config.json").read_text())["id2label"]
    assert list(labels.values()) == ["weather", "banking", "travel"]
    assert (shrunk / CLASS_MEMORY_FILE).is_file()
