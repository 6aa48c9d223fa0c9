"""Multi-label: reading `labels` lists, adapting to a standard multi-label checkpoint whose
plain pipeline() gives what `predict` prints, and the bad inputs refused before the work."""

import json

import pytest
import torch

from fewshot_nlp import ConfigError, DataError
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.multilabel import (
    MultiLabelArguments,
    adapt_multilabel,
    is_multilabel_file,
    read_multilabel,
)
from fewshot_nlp.multilabel.head import multilabel_scores

from .conftest import tiny_model

ROWS = [
    ("play some jazz and tell me the weather in paris", ["play_music", "get_weather"]),
    ("will it rain tomorrow", ["get_weather"]),
    ("is it cold outside today", ["get_weather"]),
    ("put on the new album by adele", ["play_music"]),
    ("play my workout playlist", ["play_music"]),
    ("book a table for two tonight", ["book_restaurant"]),
    ("reserve a restaurant and play rock music", ["book_restaurant", "play_music"]),
    ("is it sunny in rome and find me a pizza place to book", ["book_restaurant", "get_weather"]),
    ("what time is it", []),
]
LABELS = ["book_restaurant", "get_weather", "play_music"]


def write_jsonl(path, rows, key="labels"):
    path.write_text("".join(json.dumps({"text": t, key: y}) + "\n" for t, y in rows))
    return path


def test_reading_jsonl_and_csv(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", ROWS)
    assert is_multilabel_file([jsonl]) and not is_multilabel_file([tmp_path / "none.jsonl"])
    data = read_multilabel([jsonl])
    assert data.names == LABELS and data.labels[0] == ["get_weather", "play_music"]
    assert data.labels[-1] == [] and data.matrix()[0].tolist() == [0, 1, 1]
    csv = tmp_path / "a.csv"
    csv.write_text('text,labels\n"jazz, please",play_music|get_weather\nhello,\n')
    assert is_multilabel_file([csv], label_separator="|")
    data = read_multilabel([csv], label_separator="|", labels=LABELS)
    assert data.texts[0] == "jazz, please" and data.labels == [["get_weather", "play_music"], []]
    with pytest.raises(ConfigError, match="--label_separator"):
        read_multilabel([csv])


def test_mixed_and_malformed_rows_are_refused_with_their_lines(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        '{"text": "a", "labels": ["x", "y"]}\n{"text": "b", "label": "x"}\n'
        '{"text": "c", "labels": ["y"]}\n'
    )
    with pytest.raises(DataError, match=r"'label' \(lines '2'\).*'labels' \(lines '1', '3'\)"):
        read_multilabel([mixed])
    text = tmp_path / "text.jsonl"
    text.write_text('{"text": "a", "labels": "x"}\n{"text": "b", "labels": ["y"]}\n')
    with pytest.raises(DataError, match="line 1: 'labels' is 'x'; give a list"):
        read_multilabel([text])
    with pytest.raises(DataError, match="not in --labels"):
        read_multilabel([write_jsonl(tmp_path / "b.jsonl", ROWS)], labels=["play_music", "x"])
    with pytest.raises(DataError, match="every example has an empty label list"):
        adapt_multilabel("unused", [("a", []), ("b", [])], labels=["x", "y"])


def test_single_label_adapt_points_lists_to_the_multi_label_wing(meta_model):
    from fewshot_nlp.classifier import adapt

    with pytest.raises(DataError, match="multi-label data.*adapt_multilabel"):
        adapt(str(meta_model), ROWS)


def test_export_is_a_standard_multi_label_checkpoint(mean_model, tmp_path):
    from transformers import AutoModelForSequenceClassification, pipeline

    from fewshot_nlp.classifier.record import AdaptationRecord
    from fewshot_nlp.export import export

    with pytest.warns(UserWarning, match="not a meta-trained"):
        clf = adapt_multilabel(str(mean_model), ROWS, MultiLabelArguments(mixtures=50))
    record = AdaptationRecord.of(clf).multi_label
    assert record["held_out"]["folds"] == 3 and record["empty_examples"] == 1
    from transformers import AutoTokenizer

    out = export(clf, AutoTokenizer.from_pretrained(mean_model), tmp_path / "clf")
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert list(config["id2label"].values()) == LABELS
    card = (out / "README.md").read_text()
    assert "**Multi-label**" in card and "micro-F1" in card and "top_k=None" in card
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    classify = pipeline("text-classification", model=str(out), top_k=None)
    texts = [t for t, _ in ROWS] + ["a much longer text about music and the weather " * 3]
    tokenizer = AutoTokenizer.from_pretrained(out)
    alone = torch.cat([loaded(**tokenizer(t, return_tensors="pt")).logits.detach() for t in texts])
    batched = loaded(**tokenizer(texts, padding=True, return_tensors="pt")).logits.detach()
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)  # padding changes nothing
    for scores, logits in zip(classify(texts), alone):
        probabilities = {s["label"]: s["score"] for s in scores}
        expected = dict(zip(LABELS, torch.sigmoid(logits).tolist()))
        assert probabilities == pytest.approx(expected, abs=1e-5)


def test_cli_adapt_then_predict_matches_pipeline(mean_model, tmp_path, capsys):
    from transformers import pipeline

    train = write_jsonl(tmp_path / "train.jsonl", ROWS)
    out = tmp_path / "clf"
    argv = ["adapt", "--model", str(mean_model), "--train_file", str(train)]
    assert cli_main([*argv, "--output_dir", str(out)]) == 0
    said = capsys.readouterr().out
    assert "Adapted to 3 labels (multi-label" in said and "micro-F1" in said
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(t for t, _ in ROWS) + "\n")
    lines = tmp_path / "pred.jsonl"
    predict = ["predict", "--model", str(out), "--input_file", str(texts)]
    assert cli_main([*predict, "--output_file", str(lines)]) == 0
    capsys.readouterr()
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    classify = pipeline("text-classification", model=str(out), top_k=None)
    for row, scores in zip(rows, classify([t for t, _ in ROWS])):
        assert row["labels"] == [s["label"] for s in scores if s["score"] >= 0.5]
        assert row["scores"] == pytest.approx({s["label"]: s["score"] for s in scores})
    assert cli_main(["predict", "--model", str(out), "play jazz"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("'play jazz': [") and "play_music 0." in shown


def test_zero_shot_from_names_alone(mean_model, tmp_path):
    out = tmp_path / "clf"
    argv = ["adapt", "--model", str(mean_model), "--output_dir", str(out), "--multi_label"]
    assert cli_main([*argv, "--labels", *LABELS]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    record = config["fewshot_nlp_adaptation"]
    assert record["zero_shot_classes"] == LABELS and record["multi_label"]["held_out"] is None


def test_bad_requests_are_refused_before_the_work(mean_model, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", ROWS)
    base = ["adapt", "--model", str(mean_model), "--train_file", str(train)]
    cases = [
        (["--unknown_label", "other"], "in a multi-label one a text of none of the labels"),
        (["--inner_steps", "2"], "apply to single-label adaptation"),
    ]
    for i, (flags, message) in enumerate(cases):
        assert cli_main([*base, "--output_dir", str(tmp_path / f"o{i}"), *flags]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / f"o{i}").exists()
    labels = ["--labels", *LABELS, "rate_book"]
    never = [*base, "--output_dir", str(tmp_path / "n"), "--label_names", "never", *labels]
    assert cli_main(never) == 2
    assert "appear in no example" in capsys.readouterr().err


def test_a_multi_label_source_is_no_meta_training_source(tmp_path):
    from fewshot_nlp import TaskSource

    (tmp_path / "ml").mkdir()
    write_jsonl(tmp_path / "ml" / "train.jsonl", ROWS)
    with pytest.raises(DataError, match="is multi-label.*single-label sources only"):
        TaskSource.from_data_dir("ml", tmp_path, split="train")


def test_scores_are_the_usual_definitions():
    predicted = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0]]).bool()
    truth = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]]).bool()
    scores = multilabel_scores(predicted, truth)
    assert scores["micro_f1"] == pytest.approx(2 * 2 / (3 + 3))
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["per_label_f1"] == pytest.approx([2 / 3, 1.0, 0.0])
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_greedy_support_gives_every_label_k_positives_and_is_seeded():
    from fewshot_nlp.multilabel.evaluation import greedy_support

    pool = read_multilabel_rows(ROWS * 3)
    for k in (1, 2):
        support = greedy_support(pool, k, seed=0)
        counts = support.matrix().sum(0)
        assert (counts >= k).all() and len(support.texts) < len(pool.texts)
        assert support.texts == greedy_support(pool, k, seed=0).texts


def read_multilabel_rows(rows):
    from fewshot_nlp.multilabel.data import multilabel_data

    return multilabel_data(rows)


def test_cli_evaluate_multi_label_pairs_every_method_on_the_same_sets(mean_model, tmp_path, capsys):
    pool = write_jsonl(tmp_path / "pool.jsonl", ROWS * 2)
    test = write_jsonl(tmp_path / "test.jsonl", ROWS)
    out = tmp_path / "results.json"
    argv = ["evaluate", "--model", str(mean_model), "--test_file", str(test)]
    more = ["--support_pool", str(pool), "--k_shot", "1", "2", "--seeds", "2"]
    assert cli_main([*argv, *more, "--output_file", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| method | shots | micro-F1 | macro-F1 | exact match |" in table
    rows = json.loads(out.read_text())
    assert {(r["method"], r["k_shot"]) for r in rows} == {
        (m, k) for m in ("maml", "maml-base", "logreg", "logreg-names") for k in (1, 2)
    }
    for row in rows:
        assert row["seeds"] == 2 and 0 <= row["micro_f1"]["mean"] <= 1
        assert set(row["per_label_f1"]) == set(LABELS)
    # a plain checkpoint is its own start: maml and maml-base are the same rows
    same = {r["k_shot"]: r["micro_f1"] for r in rows if r["method"] == "maml"}
    assert same == {r["k_shot"]: r["micro_f1"] for r in rows if r["method"] == "maml-base"}
    assert cli_main(argv) == 2
    assert "--train_file" in capsys.readouterr().err
    assert cli_main([*argv, *more, "--method", "finetune"]) == 2
    assert "multi-label methods are" in capsys.readouterr().err


def test_a_multi_label_export_grows_without_its_texts(mean_model, tmp_path, capsys):
    """Adding a label from its own examples and removing one gives the head that adapting
    the resulting label set from the same examples gives (the stored embeddings are the
    texts' own), and the grown folder is a multi-label checkpoint again."""
    from fewshot_nlp.multilabel.growth import grow_multilabel

    train = write_jsonl(tmp_path / "train.jsonl", ROWS)
    out, grown = tmp_path / "clf", tmp_path / "grown"
    adapt = ["adapt", "--model", str(mean_model), "--output_dir", str(out)]
    assert cli_main([*adapt, "--train_file", str(train)]) == 0
    new = [
        ("rate this book five stars", ["rate_book"]),
        ("two stars for that novel", ["rate_book"]),
    ]
    more = write_jsonl(tmp_path / "new.jsonl", new)
    argv = ["adapt", "--model", str(out), "--train_file", str(more), "--output_dir", str(grown)]
    assert cli_main([*argv, "--remove_labels", "book_restaurant"]) == 0
    config = json.loads((grown / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert list(config["id2label"].values()) == ["get_weather", "play_music", "rate_book"]
    record = config["fewshot_nlp_adaptation"]
    assert record["added_labels"] == ["rate_book"]
    assert record["removed_labels"] == ["book_restaurant"]
    # the same rows adapted at once, on the same encoder: the same head
    at_once = [(t, [y for y in ys if y != "book_restaurant"]) for t, ys in ROWS] + new
    direct = adapt_multilabel(str(mean_model), at_once)
    again = grow_multilabel(out, new, remove_labels=["book_restaurant"])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = [t for t, _ in ROWS] + ["rate the book and tell me the weather"]
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            again(**inputs).logits, direct(**inputs).logits, atol=1e-3, rtol=1e-3
        )
    single = write_jsonl(tmp_path / "single.jsonl", [("hi", "get_weather")], key="label")
    bad = ["adapt", "--model", str(out), "--train_file", str(single)]
    assert cli_main([*bad, "--output_dir", str(tmp_path / "x")]) == 2
    assert "multi-label export" in capsys.readouterr().err


def test_a_plain_bert_checkpoint_reads_its_sentence_embedding(tokenizer, tmp_path):
    """A BERT checkpoint's [CLS] pooler is a poor multi-label feature: the export is the
    same encoder in the standard mean-pooling class, its tokenizer without token types."""
    from transformers import AutoTokenizer, pipeline

    from fewshot_nlp.export import export

    folder = tmp_path / "bert"
    tiny_model("bert", intermediate_size=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    with pytest.warns(UserWarning, match="not a meta-trained"):
        clf = adapt_multilabel(str(folder), ROWS, tokenizer=tok)
    assert clf.config.model_type == "xlm" and clf.config.problem_type.startswith("multi_label")
    out = export(clf, tok, tmp_path / "clf")
    assert "token_type_ids" not in AutoTokenizer.from_pretrained(out)("a text")
    assert len(pipeline("text-classification", model=str(out), top_k=None)("jazz")[0]) == 3


@pytest.mark.integration
def test_minilm_on_mixsnips_beats_one_vs_rest_logistic_regression(data_dir, tmp_path):
    """The packaged MiniLM adapted by the command line to 5 positives per label of MixSNIPS'
    pool, scored through plain pipeline() on test texts, against scikit-learn's one-vs-rest
    logistic regression on the same encoder's embeddings and the same support."""
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel, AutoTokenizer, pipeline

    from fewshot_nlp.modeling.pretrained import resolve_model_path
    from fewshot_nlp.multilabel.evaluation import greedy_support

    pool = read_multilabel([data_dir / "mixsnips" / "train.jsonl"])
    test = read_multilabel([data_dir / "mixsnips" / "test.jsonl"])
    support = greedy_support(pool, 5, seed=0)
    train = write_jsonl(tmp_path / "train.jsonl", list(zip(support.texts, support.labels)))
    out = tmp_path / "clf"
    argv = ["adapt", "--model", "minilm", "--train_file", str(train), "--output_dir", str(out)]
    assert cli_main(argv) == 0
    texts, truth = test.texts[:300], test.matrix()[:300].bool()
    scores = pipeline("text-classification", model=str(out), top_k=None)(texts, batch_size=32)
    ours = torch.tensor(
        [[{s["label"]: s["score"] for s in row}[n] >= 0.5 for n in test.names] for row in scores]
    )
    path = resolve_model_path("minilm")
    tok, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)

    def embed(batch):
        inputs = tok(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            hidden = encoder(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    x, y, query = embed(support.texts), support.matrix(), embed(texts)
    theirs = torch.stack(
        [
            torch.from_numpy(
                LogisticRegression(C=10, class_weight="balanced", max_iter=1000)
                .fit(x.numpy(), y[:, j].numpy())
                .predict(query.numpy())
                > 0
            )
            for j in range(len(test.names))
        ],
        dim=1,
    )
    ours_f1 = multilabel_scores(ours, truth)["micro_f1"]
    assert ours_f1 > multilabel_scores(theirs, truth)["micro_f1"] + 0.05


def test_label_names_auto_keeps_names_that_tag_the_support(mean_model):
    """'auto' keeps the names when a head on them alone tags the support examples clearly
    better than turning every label on, and drops names that say nothing."""
    from fewshot_nlp.classifier.record import AdaptationRecord
    from fewshot_nlp.multilabel.adaptation import names_tag
    from fewshot_nlp.multilabel.data import multilabel_data

    data = multilabel_data(ROWS)
    features = torch.eye(3).repeat_interleave(3, dim=0)[: len(ROWS)]  # stand-in embeddings
    targets = data.matrix()
    args = MultiLabelArguments(mixtures=0)
    assert names_tag(targets[:3] * 0 + torch.eye(3), targets, data, args, normalized=False)
    assert not names_tag(torch.zeros(3, 3), features, data, args, normalized=False)
    with pytest.warns(UserWarning):
        clf = adapt_multilabel(str(mean_model), ROWS, MultiLabelArguments(label_names="auto"))
    assert isinstance(AdaptationRecord.of(clf).label_names_used, bool)
