"""Out-of-scope rejection (issue 19): the threshold and temperature from the support set,
an export that rejects the same alone and in padded batches, the evaluation protocol."""

import json
import warnings

import numpy as np
import pytest
import torch

from fewshot_nlp import ConfigError
from fewshot_nlp.classifier import adapt
from fewshot_nlp.classifier.record import AdaptationRecord
from fewshot_nlp.classifier.rejection import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
)
from fewshot_nlp.commands import main
from fewshot_nlp.data.sources import as_task_source
from fewshot_nlp.errors import DataError
from fewshot_nlp.evaluation.out_of_scope import evaluate_out_of_scope
from fewshot_nlp.export import export
from fewshot_nlp.meta.config import plain_checkpoint_config
from fewshot_nlp.meta.maml import MAML
from fewshot_nlp.meta.model import FewShotModel
from fewshot_nlp.metrics import auroc, out_of_scope_metric
from fewshot_nlp.modeling.pooling import mean_pooling_classifier
from fewshot_nlp.modeling.rejection import add_rejection_output

from .conftest import tiny_model

TOPICS = {
    "weather": ["will it rain today", "how hot is it outside", "is it sunny tomorrow"],
    "music": ["play some jazz", "next song please", "turn the music up loud"],
    "banking": ["what is my balance", "move money to savings", "my card was declined"],
}
TRAIN = [(text, label) for label, texts in TOPICS.items() for text in texts]
OUTSIDE = ["how tall is the eiffel tower", "tell me a joke", "who won the game"]
MIXED = [
    "hi",
    "will it rain today in the north of the country this weekend",
    "play",
    "what is my balance",
    "a much longer text about nothing in particular that pads the others a lot",
]


def mean_model(tokenizer, **overrides):
    bert = tiny_model("bert", num_labels=3, intermediate_size=64, **overrides)
    return mean_pooling_classifier(
        bert, tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    )


# ------------------------------------------------------------------ the numbers
def test_threshold_rejects_at_most_the_allowed_share_of_correct_examples():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    correct = rng.random(200) < 0.8
    for loss in (0.0, 3.0, 10.0):
        threshold = choose_threshold(scores, correct, loss)
        lost = np.mean(correct & (scores < threshold))
        assert lost <= loss / 100 + 1e-12
        # one correct example more would break the budget: the threshold is the highest
        above = np.sort(scores[correct & (scores >= threshold)])[0]
        assert np.mean(correct & (scores <= above)) > loss / 100


def test_threshold_with_out_of_scope_examples_separates_them():
    inside = np.array([5.0, 6.0, 7.0, 8.0])
    correct = np.array([True, True, True, True])
    outside = np.array([1.0, 2.0, 3.0])
    threshold = choose_threshold(inside, correct, None, outside)
    assert 3.0 < threshold <= 5.0
    # a loss budget of 0 keeps every correct one even when that costs recall
    overlap = np.array([1.0, 2.0, 6.5])
    assert choose_threshold(inside, correct, 0.0, overlap) <= 5.0


def test_temperature_recovers_the_generating_one():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 5, generator=generator) * 3
    labels = torch.multinomial(torch.softmax(logits / 2.0, -1), 1, generator=generator)[:, 0]
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)


def test_calibration_error_tells_calibrated_from_overconfident():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=5000)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])
    assert expected_calibration_error(probabilities, labels) < 0.03
    sharp = probabilities**8 / (probabilities**8).sum(-1, keepdims=True)
    assert expected_calibration_error(sharp, labels) > 0.1


def test_out_of_scope_metric():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    positive, negative = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 200).round(1)
    expected = sklearn_metrics.roc_auc_score(
        np.r_[np.ones(300), np.zeros(200)], np.r_[positive, negative]
    )
    assert auroc(positive, negative) == pytest.approx(expected)
    result = out_of_scope_metric().compute(
        predictions=[0, 1, -1, -1, 2], references=[0, 1, 1, -1, -1], scores=[9, 8, 1, 2, 7]
    )
    assert result["in_scope_accuracy"] == pytest.approx(2 / 3)
    assert result["oos_recall"] == 0.5 and result["oos_precision"] == 0.5


# ------------------------------------------------------------------ the export
@pytest.mark.parametrize("dead", ["none", "zero", "constant"])
def test_mean_pooling_rejection_is_the_same_alone_and_padded(tokenizer, dead):
    """The rejection logit scales with length / padded length like the class logits, also
    when the last LayerNorm has dimensions of zero gain (as MiniLM has)."""
    model, tok = mean_model(tokenizer)
    norm = model.transformer.layer_norm2[-1]
    with torch.no_grad():
        if dead != "none":
            norm.weight[:2] = 0.0
            norm.bias[:2] = 0.0 if dead == "zero" else 0.5
    model.eval()
    alone = torch.stack([model(**tok(t, return_tensors="pt")).logits[0] for t in MIXED]).detach()
    best = (alone / 2.0).max(-1).values.sort().values  # on the calibrated logits
    threshold = float(best[2:4].mean())  # between two texts: some rejected, some not
    add_rejection_output(
        model, "none", threshold, 2.0, probe=tok(MIXED, padding=True, return_tensors="pt")
    )
    assert model.config.id2label[3] == "none"
    with torch.no_grad():
        one = torch.stack([model(**tok(t, return_tensors="pt")).logits[0] for t in MIXED])
        batch = tok(MIXED, padding=True, return_tensors="pt")
        padded = model(**batch).logits
    torch.testing.assert_close(one[:, :3], alone / 2.0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        one[:, 3], torch.full((len(MIXED),), threshold), atol=1e-4, rtol=1e-4
    )
    ratio = batch["attention_mask"].sum(1) / batch["attention_mask"].shape[1]
    torch.testing.assert_close(padded[:, 3], threshold * ratio, atol=1e-4, rtol=1e-4)
    decisions = one.argmax(-1)
    assert (decisions == 3).any() and (decisions < 3).any()
    assert torch.equal(padded.argmax(-1), decisions)


def test_cls_pooling_rejection_is_a_bias(tokenizer):
    model = tiny_model("bert", num_labels=3).eval()
    add_rejection_output(model, "none", 0.25)
    assert model.classifier.bias[-1].item() == pytest.approx(0.25)
    assert torch.count_nonzero(model.classifier.weight[-1]) == 0


def test_adapt_with_unknown_label_exports_a_pipeline_that_rejects(tokenizer, tmp_path):
    from transformers import pipeline

    model, tok = mean_model(tokenizer)
    adapted = adapt(model, TRAIN, tokenizer=tok, inner_steps=0, unknown_label="out_of_scope")
    record = AdaptationRecord.of(adapted).rejection
    assert record["rule"] == "support cross-validation" and record["folds"] == 3
    assert record["max_in_scope_loss"] == 3.0 and record["temperature"] > 0
    assert adapted.config.id2label[3] == "out_of_scope"
    out = export(adapted, tok, tmp_path / "clf")
    card = (out / "README.md").read_text()
    assert "## Out-of-scope rejection" in card and "`out_of_scope`" in card
    classify = pipeline("text-classification", model=str(out))
    texts = [t for t, _ in TRAIN] + OUTSIDE
    alone = [classify(t)[0]["label"] for t in texts]
    assert [r["label"] for r in classify(texts, batch_size=len(texts))] == alone
    with torch.no_grad():
        logits = adapted(**tok(texts, padding=True, return_tensors="pt")).logits
    expected = [adapted.config.id2label[int(i)] for i in logits.argmax(-1)]
    assert alone == expected


def test_unknown_examples_choose_the_threshold(tokenizer, tmp_path):
    model, tok = mean_model(tokenizer)
    path = tmp_path / "oos.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": "oos"}) + "\n" for t in OUTSIDE))
    adapted = adapt(
        model, TRAIN, tokenizer=tok, inner_steps=0, unknown_label="none", unknown_data=path
    )
    record = AdaptationRecord.of(adapted).rejection
    assert record["rule"] == "out-of-scope examples"
    assert record["unknown_examples"] == len(OUTSIDE)
    assert 0.0 <= record["unknown_recall"] <= 1.0


def test_one_shot_rejection_is_refused_before_the_work(tokenizer):
    """A threshold set on the examples themselves rejected almost every valid text (1 shot x
    4 classes: 32 of 40); with nothing to hold out, the request is refused."""
    model, tok = mean_model(tokenizer)
    one_shot = [(texts[0], label) for label, texts in TOPICS.items()]
    with pytest.raises(ConfigError, match="needs at least 2 examples of every class"):
        adapt(model, one_shot, tokenizer=tok, inner_steps=0, unknown_label="none")
    with pytest.raises(ConfigError, match="needs at least 2 examples of every class"):
        adapt(model, None, labels=list(TOPICS), tokenizer=tok, unknown_label="none")


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(unknown_label="music"), ConfigError, "already one of the classes"),
        (dict(unknown_label=" "), ConfigError, "non-blank"),
        (dict(unknown_label="none", max_in_scope_loss=100), ConfigError, "0 <= x < 100"),
        (dict(unknown_label="none", max_in_scope_loss=float("nan")), ConfigError, "0 <= x"),
        (dict(max_in_scope_loss=3.0), ConfigError, "needs unknown_label"),
        (dict(unknown_data=["x"]), ConfigError, "give unknown_label too"),
        (dict(unknown_label="none", unknown_data=[]), DataError, "no out-of-scope texts"),
    ],
)
def test_bad_rejection_settings_are_refused(tokenizer, options, error, match):
    model, tok = mean_model(tokenizer)
    with pytest.raises(error, match=match):
        adapt(model, TRAIN, tokenizer=tok, inner_steps=0, **options)


def test_unknown_file_with_in_scope_labels_is_refused(tokenizer, tmp_path):
    model, tok = mean_model(tokenizer)
    path = tmp_path / "oos.jsonl"
    path.write_text(json.dumps({"text": "play jazz", "label": "music"}) + "\n")
    with pytest.raises(DataError, match="classes of the classifier.*music"):
        adapt(model, TRAIN, tokenizer=tok, unknown_label="none", unknown_data=path)


def test_cli_refuses_bad_rejection_flags_before_writing(tmp_path, minilm_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in TRAIN))
    out = tmp_path / "out"
    common = [
        "adapt",
        "--model",
        str(minilm_path),
        "--train_file",
        str(train),
        "--output_dir",
        str(out),
    ]
    for extra, match in (
        (["--unknown_file", str(train)], "give unknown_label too"),
        (["--unknown_label", "none", "--unknown_file", str(tmp_path / "nope.txt")], "no such"),
        (["--unknown_label", "none", "--max_in_scope_loss", "-1"], "0 <= x < 100"),
        (["--unknown_label", "music", "--labels", "music", "weather"], "already one"),
    ):
        assert main(common + extra) != 0
        assert match in capsys.readouterr().err
        assert not out.exists()


# ------------------------------------------------------------------ the protocol
def test_out_of_scope_protocol_scores_every_method(tokenizer):
    pytest.importorskip("sklearn")
    model, tok = mean_model(tokenizer)
    few_shot = FewShotModel(MAML(model.eval(), plain_checkpoint_config(model)), tok)
    train = test = as_task_source(TRAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = evaluate_out_of_scope(few_shot, train, test, OUTSIDE, baseline_model=few_shot)
    assert [r["method"] for r in rows] == ["maml", "logreg", "prototype"]
    for row in rows:
        assert row["in_scope_examples"] == len(TRAIN)
        assert row["out_of_scope_examples"] == len(OUTSIDE)
        for key in ("in_scope_accuracy", "oos_recall", "auroc", "fpr_at_95_tpr"):
            assert 0.0 <= row[key] <= 1.0
        assert row["in_scope_accuracy"] <= row["in_scope_accuracy_without_rejection"] + 1e-9
    assert rows[0]["calibration_error"] >= 0 and "calibration_error" not in rows[2]


def test_rejection_export_reads_the_normalised_embedding(tokenizer):
    """With a normalised head, the export gets one more layer so that its head reads the
    normalised sentence embedding: scores no longer carry the feature norm, and a padded
    batch scores every text exactly as it is scored alone."""
    from fewshot_nlp.meta.maml import MAML as Wrapper

    model, tok = mean_model(tokenizer)
    layers = model.config.n_layers
    plain = adapt(model, TRAIN, tokenizer=tok, inner_steps=0)
    adapted = adapt(model, TRAIN, tokenizer=tok, inner_steps=0, unknown_label="none")
    assert adapted.config.n_layers == layers + 1 and adapted.config.summary_type == "first"
    temperature = AdaptationRecord.of(adapted).rejection["temperature"]
    reader = Wrapper(plain, plain_checkpoint_config(plain))
    with torch.no_grad():
        support = reader.features({}, tok([t for t, _ in TRAIN], padding=True, return_tensors="pt"))
        mean_norm = support.norm(dim=-1).mean()
        batch = tok(MIXED, padding=True, return_tensors="pt")
        feats = reader.features({}, batch)
        raw = torch.stack([plain(**tok(t, return_tensors="pt")).logits[0] for t in MIXED])
        expected = raw * (mean_norm / feats.norm(dim=-1, keepdim=True)) / temperature
        alone = torch.stack([adapted(**tok(t, return_tensors="pt")).logits[0] for t in MIXED])
        padded = adapted(**batch).logits
    torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(alone[:, :3], expected, atol=1e-2, rtol=5e-2)
    assert torch.equal(alone[:, :3].argmax(-1), raw.argmax(-1))


def test_predict_prints_the_rejection_label_like_any_other(tokenizer, tmp_path, capsys):
    model, tok = mean_model(tokenizer)
    adapted = adapt(model, TRAIN, tokenizer=tok, inner_steps=0, unknown_label="none")
    out = export(adapted, tok, tmp_path / "clf")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(OUTSIDE + [t for t, _ in TRAIN]) + "\n")
    preds = tmp_path / "preds.jsonl"
    args = ["predict", "--model", str(out), "--input_file", str(texts), "--top_k", "4"]
    assert main([*args, "--output_file", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == len(OUTSIDE) + len(TRAIN)
    for row in rows:  # every label, the rejection one included, ranked in top_k
        assert {p["label"] for p in row["top_k"]} == {"weather", "music", "banking", "none"}
        assert row["label"] == row["top_k"][0]["label"]
