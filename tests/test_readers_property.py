"""Property-based: whatever a data file holds, the readers give a result or a DataError."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fewshot_nlp import DataError, TaskSource
from fewshot_nlp.data.files import read_texts

label_values = st.one_of(
    st.text(max_size=8), st.integers(-3, 3), st.floats(allow_nan=True), st.booleans(), st.none()
)
records = st.fixed_dictionaries(
    {"text": st.one_of(st.text(max_size=300), st.integers(), st.none()), "label": label_values}
)
lines = st.one_of(
    records.map(json.dumps),
    records.map(lambda r: json.dumps(r, ensure_ascii=False)),
    st.sampled_from(["", "   ", "{not json", "[1, 2]", '"a string"']),
    st.text(max_size=50),
)
files = st.tuples(
    st.lists(lines, min_size=0, max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),  # duplicate the rows
    st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"]),  # none, a UTF-8 BOM, stray bytes
)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def write(tmp_path, parts, suffix=".jsonl"):
    rows, newline, duplicate, prefix = parts
    rows = rows * 2 if duplicate else rows
    path = tmp_path / f"data{suffix}"
    path.write_bytes(prefix + newline.join(rows).encode("utf-8", "surrogatepass"))
    return path


@SETTINGS
@given(parts=files)
def test_task_source_from_any_jsonl_is_a_result_or_a_data_error(tmp_path, parts):
    try:
        path = write(tmp_path, parts)
    except UnicodeEncodeError:
        return  # hypothesis drew a lone surrogate: not a file anyone can write
    try:
        source = TaskSource.from_files(path)
    except DataError as error:
        assert str(error)
        return
    assert len(source.texts) == len(source.labels) > 0
    assert all(isinstance(t, str) for t in source.texts)
    assert all(isinstance(label, str) for label in source.labels)


@SETTINGS
@given(parts=files, suffix=st.sampled_from([".jsonl", ".txt", ".csv"]))
def test_read_texts_from_any_file_is_a_result_or_a_data_error(tmp_path, parts, suffix):
    try:
        path = write(tmp_path, parts, suffix)
    except UnicodeEncodeError:
        return
    try:
        texts = read_texts(path)
    except DataError as error:
        assert str(error)
        return
    assert all(isinstance(t, str) for t in texts)


@pytest.mark.parametrize("label", [None, 1.5, True])
def test_odd_label_values(tmp_path, label):
    """Missing labels are an error; other scalars become their text (JSON's spelling for
    true/false; with ints, a warning)."""
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "a", "label": label}) + "\n")
    if label is None:
        with pytest.raises(DataError, match="missing labels"):
            TaskSource.from_files(path)
    else:
        assert TaskSource.from_files(path).label_names == [{True: "true"}.get(label, str(label))]
