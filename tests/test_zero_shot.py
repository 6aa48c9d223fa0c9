"""0-shot: a classifier from label names alone (or some classes without examples), exported
like any other, measured by `evaluate --k_shot 0` against the label-name cosine baseline."""

import json

import pytest
import torch

from fewshot_nlp import ConfigError, DataError, TaskSource
from fewshot_nlp.classifier import adapt
from fewshot_nlp.classifier.record import AdaptationRecord
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.data.episodes import EpisodeSampler
from fewshot_nlp.evaluation import evaluate_episodes
from fewshot_nlp.export import export

from .conftest import tiny_model

LABELS = ["weather forecast", "football match", "cooking recipe"]
TEXTS = {
    "weather forecast": ["will it rain tomorrow in paris", "how hot will it be this weekend"],
    "football match": ["who scored the winning goal last night", "when does the league start"],
    "cooking recipe": ["how long do I bake bread", "what spices go into a curry"],
}


@pytest.fixture(scope="module")
def minilm_mean(minilm_path):
    from fewshot_nlp.modeling.pretrained import load_classifier

    return load_classifier(minilm_path, "eager", pooling="mean")


def test_labels_alone_give_a_classifier_that_reads_the_names(minilm_mean, tmp_path):
    from transformers import pipeline

    model, tokenizer = minilm_mean
    with pytest.warns(UserWarning, match="label names were never meta-trained"):
        clf = adapt(model, labels=LABELS, tokenizer=tokenizer)
    assert clf.config.id2label == dict(enumerate(LABELS))
    record = AdaptationRecord.of(clf)
    assert record.zero_shot_classes == LABELS and record.examples == 0
    assert record.inner_steps == 0
    out = export(clf, tokenizer, tmp_path / "clf")
    assert "classified from their label names alone" in (out / "README.md").read_text()
    classify = pipeline("text-classification", model=str(out))
    texts = [t for ts in TEXTS.values() for t in ts]
    predicted = [p["label"] for p in classify(texts, batch_size=1)]
    assert predicted == [y for y, ts in TEXTS.items() for _ in ts]


def test_a_class_without_examples_joins_by_its_name(minilm_mean):
    from fewshot_nlp import FewShotModel
    from fewshot_nlp.meta.config import plain_checkpoint_config
    from fewshot_nlp.meta.maml import MAML

    model, tokenizer = minilm_mean
    run = FewShotModel(MAML(model, plain_checkpoint_config(model)), tokenizer)
    few = [(t, y) for y in LABELS[:2] for t in TEXTS[y]]
    clf = adapt(run, few, labels=LABELS)
    assert list(clf.config.id2label.values()) == LABELS
    record = AdaptationRecord.of(clf)
    assert record.zero_shot_classes == ["cooking recipe"] and record.examples == 4
    assert record.label_names_used
    inputs = tokenizer(TEXTS["cooking recipe"], return_tensors="pt", padding=True)
    with torch.no_grad():
        predicted = clf(**inputs).logits.argmax(-1).tolist()
    assert predicted == [2, 2]


def test_bad_label_sets_are_named(tokenizer):
    few = [("some text", "a"), ("other text", "b")]
    cases = [
        (dict(labels=["0", "LABEL_3", "card arrival"]), "'0', 'LABEL_3'"),
        (dict(labels=["a", "a", "b"]), "repeats"),
        (dict(labels=["solo"]), "at least 2"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError, match=message):
            adapt(tiny_model(), **kwargs, tokenizer=tokenizer)
    with pytest.raises(DataError, match="not in labels: 'b'"):
        adapt(tiny_model(), few, labels=["a", "card arrival"], tokenizer=tokenizer)
    with pytest.raises(DataError, match="Nothing to adapt to"):
        adapt(tiny_model(), tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="label_names='never' cannot classify them"):
        adapt(
            tiny_model(),
            few,
            labels=["a", "b", "card arrival"],
            tokenizer=tokenizer,
            label_names="never",
        )


def test_zero_shot_episodes_and_evaluation(minilm_path, tmp_path):
    source = TaskSource(
        name="toy",
        texts=[t for ts in TEXTS.values() for t in ts],
        labels=[y for y, ts in TEXTS.items() for _ in ts],
    )
    episode = EpisodeSampler([source], 3, 0, 2, seed=0).sample()
    assert episode.support_texts == [] and len(episode.query_texts) == 6
    from fewshot_nlp.modeling.pretrained import load_classifier

    model, tokenizer = load_classifier(minilm_path, "eager", pooling="mean")
    model.save_pretrained(tmp_path / "mean")
    tokenizer.save_pretrained(tmp_path / "mean")
    rows = evaluate_episodes(
        str(tmp_path / "mean"),
        [source],
        n_way=3,
        k_shots=[0, 1],
        q_query=1,
        episodes=2,
        methods=["maml", "logreg", "label-cosine"],
        baseline_model=str(tmp_path / "mean"),
        progress=False,
    )
    results = {r["method"]: r["results"] for r in rows}
    assert set(results["maml"]) == {"0", "1"} and set(results["label-cosine"]) == {"0", "1"}
    assert set(results["logreg"]) == {"1"}  # it needs examples: no 0-shot row
    assert results["label-cosine"]["0"]["accuracy"]["mean"] == 1.0
    assert results["maml"]["0"]["accuracy"]["mean"] == 1.0


def test_cli_adapt_from_labels_only(minilm_mean, tmp_path, capsys):
    model, tokenizer = minilm_mean
    model.save_pretrained(tmp_path / "mean")
    tokenizer.save_pretrained(tmp_path / "mean")
    out = tmp_path / "clf"
    argv = ["adapt", "--model", str(tmp_path / "mean"), "--output_dir", str(out)]
    assert cli_main([*argv, "--labels", *LABELS]) == 0
    config = json.loads((out / "config.json").read_text())
    assert list(config["id2label"].values()) == LABELS
    assert cli_main([*argv[:-1], str(tmp_path / "o2")]) == 2
    assert "Nothing to adapt to" in capsys.readouterr().err


def test_meta_training_on_zero_shot_episodes(tokenizer, data_dir, tmp_path):
    """k_shot=0: the episode head is the label names alone; the query loss trains the encoder
    to meet them (its meta-gradient is not zero), and a pair source is refused first."""
    from fewshot_nlp.meta.trainer import MetaTrainer

    from .conftest import tiny_meta_args

    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(
        tmp_path / "run", max_steps=2, k_shot=0, inner_steps=0, head_init="cosine"
    )
    trainer = MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer)
    batch = trainer.collator(trainer.sampler.sample())
    assert batch.support_labels.numel() == 0
    trainer.maml(batch).loss.backward()
    grads = [p.grad for p in trainer.maml.meta_parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    trainer.maml.zero_grad()
    state = trainer.train()
    assert state.global_step == 2
    pair = TaskSource(name="nli", texts=["a", "b"] * 4, labels=["x", "y"] * 4, text_pairs=["c"] * 8)
    with pytest.raises(ConfigError, match=r"drop \['nli'\]"):
        MetaTrainer(tiny_model(), tiny_meta_args(tmp_path / "r2", k_shot=0), [pair])


@pytest.mark.parametrize("trained_rule, noted", [("never", True), ("always", False)])
def test_zero_shot_note_reads_the_rule_the_run_was_meta_trained_with(
    tokenizer, tmp_path, trained_rule, noted
):
    """A run meta-trained without names scores a class without examples by the base
    encoder's name similarity: the user is told, even though adapt turns names on for it."""
    import warnings

    from fewshot_nlp import FewShotModel, MAMLConfig
    from fewshot_nlp.meta.maml import MAML

    config = MAMLConfig(label_names=trained_rule, inner_steps=0, head_init="cosine")
    FewShotModel(MAML(tiny_model(), config), tokenizer, max_length=16).save_pretrained(tmp_path)
    few = [(t, y) for y in LABELS[:2] for t in TEXTS[y]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = adapt(str(tmp_path), few, labels=LABELS)
    said = any("never meta-trained" in str(w.message) for w in caught)
    assert said == noted
    assert (AdaptationRecord.of(clf).zero_shot_note is not None) == noted
