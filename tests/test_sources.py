import json

import datasets
import pytest

from fewshot_nlp import DataError, TaskSource
from fewshot_nlp.data import DATA_DIR_ENV


def test_from_data_dir_reads_labels_as_names(data_dir):
    source = TaskSource.from_data_dir("trec", data_dir=data_dir, split="test")
    assert len(source) == 500
    assert set(source.label_names) == {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
    assert sum(len(ids) for ids in source.label_index.values()) == len(source)


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    assert len(TaskSource.from_data_dir("trec", split="test")) == 500
    monkeypatch.delenv(DATA_DIR_ENV)
    with pytest.raises(DataError, match=DATA_DIR_ENV):
        TaskSource.from_data_dir("trec", split="test")


def test_fold_restriction_keeps_only_that_part(data_dir):
    splits = json.loads((data_dir / "banking77" / "splits.json").read_text())["folds"]["01"]
    train = TaskSource.from_data_dir("banking77", data_dir, split="train", fold="01", part="train")
    assert set(train.label_names) == set(splits["train"])
    assert not set(train.label_names) & set(splits["test"])
    test = TaskSource.from_data_dir("banking77", data_dir, split="test", fold="01", part="test")
    assert set(test.label_names) == set(splits["test"])


def test_single_split_shape_reuters(data_dir):
    source = TaskSource.from_data_dir("reuters", data_dir, split="test", part="test")
    expected = json.loads((data_dir / "reuters" / "splits.json").read_text())["test"]
    assert set(source.label_names) == set(expected)


def test_pair_task_keeps_text_pairs(data_dir):
    source = TaskSource.from_data_dir("scitail", data_dir, split="test")
    assert source.is_pair_task and len(source.text_pairs) == len(source.texts)


def test_from_dataset_classlabel_and_strings():
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "y": datasets.ClassLabel(names=["neg", "pos"])}
    )
    ds = datasets.Dataset.from_dict({"sentence": ["a", "b", "c"], "y": [0, 1, 1]}, features)
    source = TaskSource.from_dataset(
        datasets.DatasetDict({"train": ds}), text_column="sentence", label_column="y", name="toy"
    )
    assert source.labels == ["neg", "pos", "pos"]
    plain = TaskSource.from_dataset(datasets.Dataset.from_dict({"text": ["x"], "label": [3]}))
    assert plain.labels == ["3"]


def test_csv_files(tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("utterance,intent\nhello there,greet\nbye now,leave\n")
    source = TaskSource.from_files(path, text_column="utterance", label_column="intent")
    assert source.label_names == ["greet", "leave"]


# ---------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        TaskSource.from_files(tmp_path / "nope.jsonl")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        TaskSource.from_files(path)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 3"):
        TaskSource.from_files(path)


def test_unknown_column_lists_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(DataError, match=r"label_column='intent'.*\['text', 'label'\]"):
        TaskSource.from_files(path, label_column="intent")


def test_fold_not_in_splits(data_dir):
    with pytest.raises(DataError, match=r"Fold '09'.*'01'"):
        TaskSource.from_data_dir("banking77", data_dir, fold="09", part="train")


def test_folds_require_fold(data_dir):
    with pytest.raises(DataError, match="pass fold"):
        TaskSource.from_data_dir("clinc150", data_dir, part="train")


def test_label_of_fold_missing_from_data(data_dir):
    # reuters files are split by class: the test classes are not in train.jsonl
    with pytest.raises(DataError, match="have no examples"):
        TaskSource.from_data_dir("reuters", data_dir, split="train", part="test")


def test_unknown_dataset_lists_available(data_dir):
    with pytest.raises(DataError, match="banking77"):
        TaskSource.from_data_dir("bankingg77", data_dir)
