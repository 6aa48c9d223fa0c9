"""The benchmark harness: recipes are data (configs/bench/*.yaml) that MetaTrainingArguments
accepts as they are, and a results file resumes where a run stopped."""

import json
import sys
from pathlib import Path

import pytest

from fewshot_nlp.meta.arguments import MetaTrainingArguments

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench"
sys.path.insert(0, str(BENCH))
from common import Results, bench_config, dataset_names  # noqa: E402

NOT_ARGUMENTS = {"interpolate", "curve", "exclude"}  # the meta-value script's own keys


@pytest.mark.parametrize("name", ["meta_value", "accuracy"])
def test_every_recipe_is_valid_meta_training_arguments(name, tmp_path):
    config = bench_config(name)
    recipes = config.get("recipes") or {"recipe": config["recipe"]}
    for recipe, values in recipes.items():
        merged = {**config.get("common", {}), **values}
        if "interpolate" in merged:
            assert merged["interpolate"][0] in recipes, recipe
            continue
        kept = {k: v for k, v in merged.items() if k not in NOT_ARGUMENTS}
        args = MetaTrainingArguments(output_dir=str(tmp_path), **kept)
        for key, value in kept.items():
            assert getattr(args, key) == value, (recipe, key)


def test_recipes_share_keys_through_yaml_merges():
    recipes = bench_config("meta_value")["recipes"]
    # `names-lora` inherits the label-name episode shape and overrides what it sets itself
    assert recipes["names-lora"]["n_way"] == "10-40" and recipes["names-lora"]["k_shot"] == 1
    assert recipes["step-lora-so"]["first_order"] is False
    assert recipes["step-lora-so"]["inner_steps"] == 1


def test_results_resume_and_skip_what_is_measured(tmp_path):
    path = tmp_path / "out" / "results.jsonl"
    first = Results(path)
    first.add("a/1", accuracy=0.5, summary="50")
    assert "a/1" in first and path.is_file()
    again = Results(path)  # a rerun reads what the first run wrote
    assert "a/1" in again and again.rows["a/1"]["accuracy"] == 0.5
    again.add("b/2", accuracy=0.25)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["key"] for row in lines] == ["a/1", "b/2"]


def test_multi_label_datasets_are_no_meta_training_sources(tmp_path):
    for name, row in (
        ("single", {"text": "t", "label": "x"}),
        ("multi", {"text": "t", "labels": ["x"]}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.jsonl").write_text(json.dumps(row) + "\n")
    assert dataset_names(str(tmp_path)) == ["single"]
