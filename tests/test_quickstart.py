"""The quickstart reads configs/quickstart.yaml and runs the whole story (tiny model here)."""

import json

from fewshot_nlp.commands import main as cli_main

from .conftest import tiny_model


def test_quickstart_reads_the_recipe_and_runs_end_to_end(tmp_path, tokenizer, data_dir, capsys):
    base = tmp_path / "tiny"
    tiny_model(intermediate_size=64).save_pretrained(base)  # pooling: mean needs 4 x hidden
    tokenizer.save_pretrained(base)
    code = cli_main(
        [
            "quickstart",
            "--output_dir",
            str(tmp_path / "qs"),
            "--data_dir",
            str(data_dir),
            "--model_name_or_path",
            str(base),
            "--max_steps",
            "2",
            "--eval_episodes",
            "2",
            "--max_length",
            "16",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    methods = {"maml", "maml+pool", "maml-base", "logreg", "prototype", "label-cosine"}
    assert set(summary["held_out_accuracy"]) == methods
    assert set(summary["held_out_accuracy"]["maml+pool"]) == {"1", "5"}
    # the pool row sits beside the row without it
    assert (
        "with 100 unlabeled banking77 texts per episode (30 % of other classes): 1-shot ours" in out
    )
    assert "ours without meta-training" in out  # the meta-value, printed beside ours
    assert set(summary["held_out_accuracy"]["maml"]) == {"0", "1", "5"}
    assert set(summary["held_out_accuracy"]["logreg"]) == {"1", "5"}  # it needs examples
    assert "0-shot: ours" in out and "label-name cosine" in out
    assert "10-40-way 0-shot episodes, 0 inner steps, mean pooling, cosine head" in out
    assert "4/4 pipeline" in out
    exported = json.loads((tmp_path / "qs" / "classifier" / "config.json").read_text())
    assert exported["architectures"] == ["XLMForSequenceClassification"]
    meta = json.loads((tmp_path / "qs" / "meta" / "fewshot_nlp.json").read_text())
    assert meta["maml"]["adapt_head_init"] == "logreg"
    assert meta["meta_training"]["steps"] == 2
    assert (tmp_path / "qs" / "classifier" / "model.safetensors").is_file()
    card = (tmp_path / "qs" / "meta" / "README.md").read_text()
    assert "2 meta-steps" in card and "| snips |" in card and str(tmp_path) not in card
