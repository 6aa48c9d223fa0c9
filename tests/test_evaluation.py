import json

import numpy as np
import pytest
import torch

from fewshot_nlp import ConfigError, TaskSource
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.evaluation import (
    METHOD_REGISTRY,
    MethodRunner,
    evaluate_episodes,
    evaluate_fixed,
    plot_accuracy,
    summarize,
)
from fewshot_nlp.meta.trainer import MetaTrainer
from fewshot_nlp.metrics import classification_metric

from .conftest import tiny_meta_args, tiny_model

TOPICS = {
    "weather": [
        "it will rain tomorrow",
        "sunny skies and warm wind",
        "snow storm tonight",
        "heavy rain and thunder",
        "cloudy with a chance of rain",
        "the forecast says sun",
    ],
    "banking": [
        "transfer money to my account",
        "my card was declined",
        "check my bank balance",
        "open a savings account",
        "the atm kept my card",
        "wire money abroad",
    ],
    "music": [
        "play some jazz songs",
        "turn up the guitar music",
        "next song please",
        "add this track to my playlist",
        "play the new album",
        "shuffle my favourite songs",
    ],
}


@pytest.fixture(scope="module")
def toy_source():
    # every text names its topic: the classes are separable for any sensible encoder
    return TaskSource(
        name="toy",
        texts=[f"{y}: {t}" for y, ts in TOPICS.items() for t in ts],
        labels=[y for y, ts in TOPICS.items() for _ in ts],
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tokenizer, data_dir):
    out = tmp_path_factory.mktemp("eval") / "run"
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    MetaTrainer(
        tiny_model(), tiny_meta_args(out, max_steps=2), sources, tokenizer=tokenizer
    ).train()
    return str(out)


def test_metric_goes_through_evaluate():
    import evaluate

    metric = classification_metric()
    assert isinstance(metric, evaluate.Metric)
    scores = metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])
    assert scores["accuracy"] == 0.75
    assert scores["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_prototype_on_separable_toy_scores_one(minilm_path, toy_source):
    results = evaluate_episodes(
        minilm_path,
        [toy_source],
        n_way=3,
        k_shots=[2],
        q_query=4,
        episodes=5,
        methods=["prototype"],
        progress=False,
    )
    assert results[0]["results"]["2"]["accuracy"]["mean"] == 1.0


def test_same_seed_same_numbers_and_schema(tiny_run, toy_source):
    model = MethodRunner(tiny_run)
    kwargs = dict(n_way=3, k_shots=[1, 2], q_query=2, episodes=4, progress=False)
    a = evaluate_episodes(model, [toy_source], seed=1, **kwargs)
    b = evaluate_episodes(model, [toy_source], seed=1, **kwargs)
    assert a == [
        {
            **x,
            "results": {
                k: {**v, "adapt_seconds": y["results"][k]["adapt_seconds"]}
                for k, v in x["results"].items()
            },
        }
        for x, y in zip(b, a)
    ]
    assert [e["method"] for e in a] == ["maml", "maml-base", "logreg", "prototype", "finetune"]
    for entry in a:
        assert {"protocol", "model", "dataset", "method", "results"} <= set(entry)
        assert set(entry["results"]) == {"1", "2"}
        for r in entry["results"].values():
            assert set(r["accuracy"]) == {"mean", "ci95"} and set(r["f1_macro"]) == {"mean", "ci95"}
            assert r["episodes"] == 4


def test_ci_shrinks_with_more_episodes(tiny_run, toy_source):
    model = MethodRunner(tiny_run)
    widths = []
    for episodes in (5, 60):
        r = evaluate_episodes(
            model,
            [toy_source],
            n_way=3,
            k_shots=[1],
            q_query=2,
            episodes=episodes,
            methods=["prototype"],
            progress=False,
        )
        widths.append(r[0]["results"]["1"]["accuracy"]["ci95"])
    assert widths[1] < widths[0]
    assert summarize([0.5, 0.7])["ci95"] == pytest.approx(1.96 * 0.1414213 / 2**0.5, rel=1e-5)


def test_fixed_shot_protocol(tiny_run, toy_source):
    train = TaskSource(name="few", texts=toy_source.texts[::2], labels=toy_source.labels[::2])
    test = TaskSource(name="toy", texts=toy_source.texts[1::2], labels=toy_source.labels[1::2])
    results = evaluate_fixed(tiny_run, train, test, methods=["maml", "prototype"])
    assert [r["protocol"] for r in results] == ["fixed", "fixed"]
    assert results[0]["results"]["3"]["test_examples"] == 9


def test_fixed_zero_shot_classifies_by_label_names(tiny_run, toy_source):
    # every test text is its own label name: the nearest name is the right one for any encoder
    names = toy_source.label_names
    test = TaskSource(name="names", texts=names * 2, labels=names * 2)
    results = evaluate_fixed(tiny_run, None, test, methods=["label-cosine", "maml"])
    rows = {r["method"]: r["results"]["0"] for r in results}
    assert rows["label-cosine"]["accuracy"]["mean"] == 1.0
    assert rows["maml"]["test_examples"] == 2 * len(names)
    with pytest.raises(ConfigError, match=r"\['logreg'\] need examples"):
        evaluate_fixed(tiny_run, None, test, methods=["maml", "logreg"])


def test_plot_is_png(tiny_run, toy_source, tmp_path):
    results = evaluate_episodes(
        tiny_run,
        [toy_source],
        n_way=2,
        k_shots=[1, 2],
        q_query=1,
        episodes=3,
        methods=["prototype", "maml"],
        progress=False,
    )
    path = plot_accuracy(results, tmp_path / "acc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate(tiny_run, data_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = cli_main(
        [
            "evaluate",
            "--model",
            tiny_run,
            "--data-dir",
            str(data_dir),
            "--dataset",
            "banking77",
            "--fold",
            "01",
            "--part",
            "test",
            "--n_way",
            "3",
            "--k_shot",
            "1",
            "2",
            "--q-query",
            "2",
            "--episodes",
            "3",
            "--method",
            "prototype",
            "maml",
            "--output_file",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())
    assert [r["method"] for r in results] == ["prototype", "maml"]
    assert "accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--model", tiny_run, "--dataset", "trec", "--method", "knn"])
    assert "invalid choice: 'knn'" in capsys.readouterr().err


def test_cli_fixed_zero_shot_without_train_file(tiny_run, toy_source, tmp_path, capsys):
    names = toy_source.label_names
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"text": n, "label": n}) + "\n" for n in names))
    out = tmp_path / "r.json"
    argv = ["evaluate", "--model", tiny_run, "--test_file", str(test)]
    assert cli_main([*argv, "--method", "label-cosine", "logreg", "--output_file", str(out)]) == 0
    (row,) = json.loads(out.read_text())  # logreg needs examples: it has no 0-shot row
    assert row["method"] == "label-cosine"
    assert row["results"]["0"]["accuracy"]["mean"] == 1.0
    assert cli_main([*argv, "--method", "logreg"]) != 0
    assert "none of the chosen --method values" in capsys.readouterr().err


def test_logreg_baseline_is_scikit_learn_on_normalised_mean_pooling(tiny_run, toy_source):
    """The ten-line alternative, written out by hand, must give exactly our logreg rows."""
    from sklearn.linear_model import LogisticRegression

    model = MethodRunner(tiny_run)
    support, query = toy_source.texts[::2], toy_source.texts[1::2]
    names = toy_source.label_names
    y = [names.index(label) for label in toy_source.labels[::2]]
    ours = model.predict("logreg", support, y, len(names), query)

    def embed(texts):
        inputs = model.model.collator.encode(list(texts))
        with torch.no_grad():
            hidden = model.model.model.base_model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    hand = LogisticRegression(C=10.0, max_iter=1000).fit(embed(support).numpy(), y)
    assert ours.tolist() == hand.predict(embed(query).numpy()).tolist()


def test_prototype_is_cosine_by_default(tiny_run, toy_source):
    cosine, euclidean = (
        MethodRunner(tiny_run),
        MethodRunner(tiny_run, prototype_distance="euclidean"),
    )
    support, query = toy_source.texts[::2], toy_source.texts[1::2]
    names = toy_source.label_names
    y = [names.index(label) for label in toy_source.labels[::2]]
    feats = torch.nn.functional.normalize(cosine.model.features(support, pooling="mean"), dim=-1)
    queries = torch.nn.functional.normalize(cosine.model.features(query, pooling="mean"), dim=-1)
    protos = torch.nn.functional.normalize(
        torch.stack([feats[torch.tensor(y) == c].mean(0) for c in range(len(names))]), dim=-1
    )
    expected = (queries @ protos.T).argmax(-1).tolist()
    assert cosine.predict("prototype", support, y, len(names), query).tolist() == expected
    raw = euclidean.model.features(query, pooling="mean")
    raw_protos = torch.stack(
        [
            euclidean.model.features(support, pooling="mean")[torch.tensor(y) == c].mean(0)
            for c in (0, 1, 2)
        ]
    )
    assert (
        euclidean.predict("prototype", support, y, 3, query).tolist()
        == torch.cdist(raw, raw_protos).argmin(-1).tolist()
    )


def test_missing_baseline_packages_are_clear_errors(tiny_run, toy_source, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn") or name == "setfit":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_sklearn)
    model = MethodRunner(tiny_run)
    texts, labels = toy_source.texts[:6], [0, 0, 1, 1, 2, 2]
    with pytest.raises(ConfigError, match=r"fewshot-nlp\[baselines\].*scikit-learn"):
        model.predict("logreg", texts, labels, 3, texts)
    with pytest.raises(ConfigError, match=r"fewshot-nlp\[setfit\]"):
        model.predict("setfit", texts, labels, 3, texts)


def test_slow_methods_capped_on_the_same_episodes(tiny_run, toy_source):
    kwargs = dict(n_way=3, k_shots=[1], q_query=2, progress=False, seed=3)
    capped = evaluate_episodes(
        tiny_run,
        [toy_source],
        episodes=6,
        methods=["prototype", "finetune"],
        method_episodes={"finetune": 2},
        **kwargs,
    )
    first_two = evaluate_episodes(
        tiny_run, [toy_source], episodes=2, methods=["finetune"], **kwargs
    )
    assert [r["results"]["1"]["episodes"] for r in capped] == [6, 2]
    assert capped[1]["results"]["1"]["accuracy"] == first_two[0]["results"]["1"]["accuracy"]


def test_finetune_follows_the_trainer_recipe(tiny_run, toy_source, monkeypatch):
    """Mini-batches x epochs optimizer steps, warm-up then linear decay to zero."""
    from fewshot_nlp.evaluation import FinetuneConfig

    rates = []
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    config = FinetuneConfig(epochs=3, batch_size=4, learning_rate=1e-3, warmup_ratio=0.25)
    model = MethodRunner(tiny_run, finetune=config)
    texts = toy_source.texts[:9]
    model.predict("finetune", texts, [0, 1, 2] * 3, 3, texts)
    assert len(rates) == 3 * 3  # ceil(9 / 4) batches per epoch
    assert rates[0] < rates[2] == pytest.approx(1e-3)  # warm-up over the first 2 steps
    assert rates[-1] < rates[3]


def test_baselines_default_to_the_base_encoder(tmp_path, tokenizer, toy_source, data_dir):
    """A run started from a saved checkpoint: its baselines load that checkpoint, not the run."""
    base = tmp_path / "base"
    model = tiny_model()
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    from fewshot_nlp.modeling.pretrained import load_classifier

    start, _ = load_classifier(str(base), "eager")
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    MetaTrainer(
        start, tiny_meta_args(tmp_path / "run", max_steps=1), sources, tokenizer=tokenizer
    ).train()
    rows = evaluate_episodes(
        str(tmp_path / "run"),
        [toy_source],
        n_way=3,
        k_shots=[1],
        q_query=2,
        episodes=2,
        methods=["maml", "logreg"],
        progress=False,
    )
    assert rows[0]["model"] == str(tmp_path / "run")
    assert rows[1]["model"] == str(base)
    # the loaded base encoder runs the baselines with the runner's settings (--logreg_c)
    from fewshot_nlp.evaluation.runner import method_runners

    chosen = method_runners(MethodRunner(str(tmp_path / "run"), logreg_c=0.5), None, ["logreg"])
    assert chosen["logreg"].path == str(base) and chosen["logreg"].logreg_c == 0.5


def test_cli_evaluate_overrides_the_adaptation(tiny_run, data_dir, tmp_path):
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", tiny_run, "--data_dir", str(data_dir), "--dataset", "trec"]
    args += ["--split", "test", "--n_way", "3", "--k_shot", "2", "--q_query", "2"]
    args += ["--episodes", "2", "--method", "maml", "--output_file", str(out)]
    args += ["--adapt_head_init", "ridge", "--adapt_step_candidates", "0", "1"]
    args += ["--label_names", "never"]
    assert cli_main(args) == 0
    assert json.loads(out.read_text())[0]["method"] == "maml"
    model = MethodRunner(tiny_run, adapt_head_init="ridge")
    assert model.model.config.adaptation_head_init == "ridge"


def test_trainer_and_evaluate_score_the_same_episodes_alike(tmp_path, tokenizer, toy_source):
    """One evaluator: the trainer's validation and `evaluate`'s maml rows agree exactly on the
    same episodes, the second reading the run from disk."""
    from fewshot_nlp.meta.validation import EVAL_SEED_OFFSET

    args = tiny_meta_args(tmp_path / "run", max_steps=2)
    trainer = MetaTrainer(tiny_model(), args, [toy_source], [toy_source], tokenizer=tokenizer)
    trainer.train()
    during = trainer.evaluate(episodes=5)["eval_accuracy"]
    rows = evaluate_episodes(
        str(tmp_path / "run"),
        [toy_source],
        n_way=3,
        k_shots=[args.k_shot],
        q_query=args.q_query,
        episodes=5,
        seed=args.seed + EVAL_SEED_OFFSET,
        methods=["maml"],
        progress=False,
    )
    assert rows[0]["results"][str(args.k_shot)]["accuracy"]["mean"] == pytest.approx(during)


def test_fewshot_model_load_options_and_unchanged_run(tiny_run, toy_source):
    from fewshot_nlp import ConfigError, FewShotModel

    with pytest.raises(ConfigError, match="unknown settings \\['head_int'\\]"):
        FewShotModel.from_pretrained(tiny_run, head_int="ridge")
    run = FewShotModel.from_pretrained(tiny_run, adapt_head_init="ridge", max_length=16)
    assert run.config.adaptation_head_init == "ridge" and run.collator.max_length == 16
    assert run.meta_trained and run.path == tiny_run
    before = {n: p.clone() for n, p in run.model.state_dict().items()}
    pairs = list(zip(toy_source.texts, toy_source.labels))
    from fewshot_nlp import adapt

    first, second = adapt(run, pairs), adapt(run, pairs)  # adapting twice: the same classifier
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_cli_evaluate_reads_yaml_and_checks_choices(tiny_run, data_dir, tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text(
        "dataset: trec\nsplit: test\nn_way: '3'\nk_shot: [2]\nq_query: 2\nepisodes: 2\n"
        "method: [maml, prototype]\nadapt_head_init: ridge\n"
    )
    out = tmp_path / "r.json"
    argv = ["evaluate", "--config", str(config), "--model", tiny_run, "--data_dir", str(data_dir)]
    assert cli_main([*argv, "--output_file", str(out), "--episodes", "3"]) == 0
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["maml", "prototype"]
    assert rows[0]["episodes"] == 3 and rows[0]["settings"]["adapt_head_init"] == "ridge"
    with pytest.raises(SystemExit):
        cli_main([*argv, "--prototype_distance", "manhattan"])
    assert "invalid choice: 'manhattan'" in capsys.readouterr().err
    config.write_text("dataset: trec\nepisode: 3\n")
    assert cli_main(argv) == 2
    assert "Unknown key 'episode'" in capsys.readouterr().err


def test_maml_base_is_the_runs_adaptation_on_its_starting_encoder(tmp_path, tokenizer, data_dir):
    """The meta-value row: the same adaptation settings, the weights the run started from."""
    from dataclasses import replace

    from fewshot_nlp import FewShotModel
    from fewshot_nlp.modeling.pretrained import load_classifier

    start = tmp_path / "start"
    tiny_model().save_pretrained(start)
    tokenizer.save_pretrained(start)
    model, _ = load_classifier(str(start), "eager")
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(tmp_path / "run", max_steps=2, adapt_head_init="ridge", inner_steps=2)
    MetaTrainer(model, args, sources, tokenizer=tokenizer).train()
    run = FewShotModel.from_pretrained(tmp_path / "run")
    base = run.without_meta_training()
    assert base.config == replace(run.config, learn_inner_lr="none")
    assert not base.meta_trained and base.without_meta_training() is base
    started = dict(load_classifier(str(start), "eager")[0].named_parameters())
    moved = False
    for name, value in base.model.named_parameters():
        assert torch.equal(value, started[name]), name
        moved |= not torch.equal(value, dict(run.model.named_parameters())[name])
    assert moved  # meta-training changed the run, not its step 0
    rows = evaluate_episodes(
        run,
        sources,
        n_way=3,
        k_shots=[2],
        q_query=2,
        episodes=2,
        methods=["maml", "maml-base"],
        progress=False,
    )
    assert [r["method"] for r in rows] == ["maml", "maml-base"]
    assert rows[1]["model"] == str(start)


def test_maml_base_without_a_known_start_is_a_clear_error(tiny_run, toy_source, tmp_path):
    import shutil
    from pathlib import Path

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert (run / "base_model" / "config.json").is_file()  # an unnamed start is kept
    shutil.rmtree(run / "base_model")
    with pytest.raises(ConfigError, match="Leave maml-base out of the methods"):
        evaluate_episodes(
            str(run), [toy_source], n_way=3, k_shots=[1], q_query=2, methods=["maml-base"]
        )
    assert Path(tiny_run, "base_model").is_dir()


def test_setfit_baseline_writes_nothing_in_the_current_folder(tmp_path, monkeypatch):
    """setfit's defaults write ./checkpoints and ./runs: the baseline trains in a
    temporary folder instead (a stand-in setfit records what it is given)."""
    import sys
    import types
    from pathlib import Path

    from fewshot_nlp.evaluation import MethodRunner

    seen = {}

    class Args:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    class Trainer:
        def __init__(self, model, args, train_dataset):
            self.train_dataset = train_dataset

        def train(self):
            Path(seen["output_dir"], "checkpoint-1").mkdir()  # what setfit would write

    class Model:
        model_body = types.SimpleNamespace(max_seq_length=256)

        @classmethod
        def from_pretrained(cls, path):
            seen["model"] = cls()
            return seen["model"]

    fake = types.ModuleType("setfit")
    fake.TrainingArguments, fake.Trainer, fake.SetFitModel = Args, Trainer, Model
    monkeypatch.setitem(sys.modules, "setfit", fake)
    monkeypatch.chdir(tmp_path)
    runner = MethodRunner.__new__(MethodRunner)
    runner.model = types.SimpleNamespace(path="base", collator=types.SimpleNamespace(max_length=48))
    METHOD_REGISTRY["setfit"].fit(runner, ["a b", "c d"], [0, 1], None)
    assert seen["save_strategy"] == "no" and seen["report_to"] == "none"
    assert seen["model"].model_body.max_seq_length == 48  # truncated like the other methods
    assert not Path(seen["output_dir"]).exists()  # removed after training
    assert list(tmp_path.iterdir()) == []


def test_methods_head_inits_and_scopes_come_from_registries(tiny_run, toy_source):
    """One registry per axis: the CLI offers exactly what is registered, and a method
    registered by a user runs in the paired protocol like the built-in ones."""
    from dataclasses import fields

    from fewshot_nlp.classifier.arguments import AdaptationArguments
    from fewshot_nlp.commands.arguments import EvaluateArguments
    from fewshot_nlp.evaluation import register_method
    from fewshot_nlp.meta.config import MAMLConfig
    from fewshot_nlp.modeling.head import HEAD_INIT_REGISTRY
    from fewshot_nlp.modeling.scopes import parse_adapt_scope

    def choices(cls, name):
        return tuple(next(f for f in fields(cls) if f.name == name).metadata["choices"])

    from fewshot_nlp.multilabel.arguments import METHODS as MULTI_LABEL
    from fewshot_nlp.unlabeled.arguments import POOL_METHODS

    # the core's methods, then the wings' (registered when their wing is imported)
    core = [m for m in METHOD_REGISTRY if m not in POOL_METHODS]
    offered = tuple(dict.fromkeys([*core, *MULTI_LABEL, *POOL_METHODS]))
    assert choices(EvaluateArguments, "method") == offered
    assert choices(AdaptationArguments, "adapt_head_init") == tuple(HEAD_INIT_REGISTRY)
    assert choices(MAMLConfig, "adapt_head_init") == tuple(HEAD_INIT_REGISTRY)
    assert parse_adapt_scope("top:2") == ("top", 2) and parse_adapt_scope("lora") == ("lora", None)
    for bad in ("top", "top:0", "full:2", "everything"):
        with pytest.raises(ValueError):
            parse_adapt_scope(bad)

    @register_method
    class Majority:
        name, adaptation, zero_shot = "majority", False, False

        def predict(self, runner, task):
            return np.full(len(task.query_texts), np.bincount(task.support_labels).argmax())

    try:
        kwargs = dict(n_way=3, k_shots=[2], q_query=2, episodes=3, progress=False)
        rows = evaluate_episodes(tiny_run, [toy_source], methods=["majority"], **kwargs)
        assert rows[0]["method"] == "majority"
        # 2 queries per class, one class predicted: a third right in every episode
        assert rows[0]["results"]["2"]["accuracy"]["mean"] == pytest.approx(1 / 3)
    finally:
        METHOD_REGISTRY.pop("majority")


@pytest.mark.parametrize("steps", [0, 1])
def test_cached_features_adapt_alike_and_spare_the_encoder(tiny_run, toy_source, steps):
    """An evaluation's cache serves the support and the label names too: the same logits
    as without it, and an episode with no inner step runs no encoder forward once its texts
    were seen."""
    from fewshot_nlp import FewShotModel

    options = dict(inner_steps=steps, label_names="always", adapt_step_candidates=None)
    cached = FewShotModel.from_pretrained(tiny_run, cache_features=True, **options)
    plain = FewShotModel.from_pretrained(tiny_run, **options)
    ids = {y: i for i, y in enumerate(TOPICS)}
    support = [0, 6, 12, 1, 7, 13]
    texts = [toy_source.texts[i] for i in support]
    labels = [ids[toy_source.labels[i]] for i in support]
    queries = [t for i, t in enumerate(toy_source.texts) if i not in support]
    args = (texts, labels, len(TOPICS), queries)
    names = list(TOPICS)
    expected = plain.episode_logits(*args, label_names=names)
    assert torch.allclose(cached.episode_logits(*args, label_names=names), expected, atol=1e-5)
    forwards = []
    hook = cached.model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        again = cached.episode_logits(*args, label_names=names)
    finally:
        hook.remove()
    assert torch.allclose(again, expected, atol=1e-5)
    assert (len(forwards) == 0) == (steps == 0), forwards
