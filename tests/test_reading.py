"""Texts and labels read as the user wrote them (issue 22, items 11-14 and the smaller ones)."""

import json

import pytest

from fewshot_nlp import DataError
from fewshot_nlp.classifier import adapt
from fewshot_nlp.data.files import read_texts

from .conftest import tiny_model


def test_txt_lines_end_only_at_newlines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("one\u2028still one\fand\x85more\r\ntwo\n\nthree".encode())
    # a blank line inside is a (blank) text, so that output rows match input lines
    assert read_texts(path) == ["one\u2028still one\fand\x85more", "two", "", "three"]


def test_csv_quoted_fields_may_span_lines_and_short_rows_are_named(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,text\n1,"multi\nline text"\n2,plain\n', encoding="utf-8")
    assert read_texts(path) == ["multi\nline text", "plain"]
    path.write_text("id,text\n1,fine\n2\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: the row has no 'text' field"):
        read_texts(path)


def test_predict_reads_its_own_output(tmp_path):
    path = tmp_path / "out.jsonl"
    texts = ["a\u2028b", "c\u2029d", "e\x85f"]
    path.write_text(
        "\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts) + "\n",
        encoding="utf-8",
    )
    assert read_texts(path) == texts


def test_empty_and_unreadable_input_files_say_what_they_need(tmp_path, monkeypatch):
    from pathlib import Path

    empty = tmp_path / "in.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="needs at least one text to classify"):
        read_texts(empty)
    locked = tmp_path / "locked.txt"
    locked.write_text("text")
    read_bytes = Path.read_bytes

    def denied(path):  # what a file without read permission gives (root reads any file)
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError, match="permission denied"):
        read_texts(locked)


def test_label_typos_blank_labels_and_clashing_texts(tokenizer):
    alike = [("first text", "Card"), ("second text", "card "), ("third", "card"), ("x", "b")]
    with pytest.warns(
        UserWarning, match="differ only by case, spaces or '_'.*'Card' / 'card ' / 'card'"
    ):
        adapt(tiny_model(), alike, tokenizer=tokenizer)
    clash = [("same text", "a"), ("same text", "b"), ("other", "b")]
    with pytest.warns(UserWarning, match=r"1 text\(s\) carry more than one label"):
        adapt(tiny_model(), clash, tokenizer=tokenizer)
    with pytest.raises(DataError, match="blank label"):
        adapt(tiny_model(), [("t1", " "), ("t2", "a"), ("t3", "b")], tokenizer=tokenizer)


def test_predict_batches_by_length_with_the_scores_of_one_at_a_time(tokenizer, tmp_path):
    """Padded batches would change a mean-pooling export's scores; equal-length batches give
    each text the score it gets alone, and the file keeps the input order."""
    from transformers import pipeline

    from fewshot_nlp.commands import main as cli_main
    from fewshot_nlp.export import export
    from fewshot_nlp.predict import classify_texts

    few = [(f"example {i} of topic {c} words", f"topic_{c}") for c in range(3) for i in range(2)]
    out = export(
        adapt(tiny_model("bert-mean"), few, tokenizer=tokenizer), tokenizer, tmp_path / "c"
    )
    texts = [("word " * n).strip() + f" {n % 3}" for n in (1, 7, 3, 7, 1, 12, 3, 7, 30, 2)]
    classifier = pipeline("text-classification", model=str(out), top_k=None)
    batched, _ = classify_texts(classifier, texts, batch_size=4)
    for text, top in zip(texts, batched):
        alone = classifier([text])[0]
        assert [p["label"] for p in top] == [p["label"] for p in alone]
        for a, b in zip(top, alone):
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)
    padded = classifier(texts, batch_size=len(texts))  # what plain batching would give
    assert any(abs(a[0]["score"] - b[0]["score"]) > 1e-4 for a, b in zip(padded, batched)), (
        "the tiny mean-pooling model should show the padding effect this guards against"
    )
    (tmp_path / "in.txt").write_text("\n".join(texts))
    argv = ["predict", "--model", str(out), "--input_file", str(tmp_path / "in.txt")]
    assert cli_main([*argv, "--output_file", str(tmp_path / "o.jsonl"), "--batch_size", "3"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == texts


def test_remote_code_is_refused_before_anything_runs(tmp_path, tokenizer, capsys):
    """A folder whose config maps classes to its own files: no prompt, no code run, a flag."""
    from fewshot_nlp.commands import main as cli_main
    from fewshot_nlp.export import export

    few = [(f"example {i} of topic {c} words", f"topic_{c}") for c in range(2) for i in range(2)]
    out = export(adapt(tiny_model(), few, tokenizer=tokenizer), tokenizer, tmp_path / "clf")
    config = json.loads((out / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.Model"}
    (out / "config.json").write_text(json.dumps(config))
    (out / "evil.py").write_text("raise SystemExit('the folder code ran')\n")
    train = tmp_path / "few.jsonl"
    train.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in few))
    for argv in (
        ["predict", "--model", str(out), "a text"],
        ["adapt", "--model", str(out), "--train_file", str(train), "--output_dir", "o"],
        ["evaluate", "--model", str(out), "--dataset", "trec"],
    ):
        assert cli_main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert "runs Python code of its own" in err and "--trust_remote_code" in err
    assert "--trust_remote_code" in _help_text(capsys, "predict")


def _help_text(capsys, command: str) -> str:
    from fewshot_nlp.commands import main as cli_main

    with pytest.raises(SystemExit):
        cli_main([command, "--help"])
    return capsys.readouterr().out
