"""Unlabeled text: reading a pool (streamed, deduplicated, capped, bad input refused with
where), self-training and its k-fold rule on features, and the pool through adapt, the
export, a later growth, and evaluate, paired with the same methods without it."""

import json

import pytest
import torch

from fewshot_nlp import ConfigError, DataError
from fewshot_nlp.commands import main as cli_main
from fewshot_nlp.modeling.head import EpisodeHead
from fewshot_nlp.unlabeled import UnlabeledArguments, adapt_with_unlabeled, read_pool
from fewshot_nlp.unlabeled.adaptation import head_fit
from fewshot_nlp.unlabeled.self_training import check_pool, self_train

FEW = [
    ("my card has not arrived yet", "card_arrival"),
    ("when will my new card come", "card_arrival"),
    ("the card still has not come", "card_arrival"),
    ("how do i top up my account", "top_up"),
    ("add money to my balance", "top_up"),
    ("top up failed with my card", "top_up"),
    ("what is the exchange rate", "exchange_rate"),
    ("which rate do you use for euros", "exchange_rate"),
    ("exchange rate for dollars", "exchange_rate"),
]
POOL = [
    "is my card on its way",
    "i am still waiting for the card",
    "put money on my account please",
    "how can i add funds",
    "what rate will i get for pounds",
    "is the exchange rate fixed",
    "my card has not arrived yet",  # a labelled example: taken out of the pool
    "",
    "is my card on its way",  # a repeat
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    return path


# ---------------------------------------------------------------- reading the pool
def test_pool_drops_blank_repeated_and_labelled_texts_and_says_so(tmp_path):
    labelled = [t for t, _ in FEW]
    with pytest.warns(UserWarning, match="dropped 1 blank, 1 repeated, 1 also in the labelled"):
        pool = read_pool(POOL, labelled=labelled, max_unlabeled=100)
    assert pool.texts == POOL[:6] and pool.read == len(POOL)
    txt = tmp_path / "pool.txt"
    txt.write_text("\n".join(POOL) + "\n")
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t}) + "\n" for t in POOL))
    csv = tmp_path / "pool.csv"
    csv.write_text("id,body\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(POOL)))
    for path, column in ((txt, "text"), (jsonl, "body"), (csv, "body")):
        got = read_pool(path, labelled=labelled, max_unlabeled=100, text_column=column, warn=False)
        assert got.texts == POOL[:6], path


def test_a_large_pool_is_streamed_into_a_uniform_seeded_sample(tmp_path):
    """A file sorted by class still gives the late classes their share (not the first N)."""
    path = tmp_path / "big.txt"
    path.write_text("".join(f"class {i // 100} text {i}\n" for i in range(2000)))
    with pytest.warns(UserWarning, match="sampled from 2000 distinct texts"):
        pool = read_pool(path, max_unlabeled=200)
    assert len(pool) == 200 and pool.sampled_from == 2000
    late = sum(int(t.split()[1]) >= 10 for t in pool.texts)
    assert 60 < late < 140  # about half come from the second half of the file
    again = read_pool(path, max_unlabeled=200, warn=False)
    assert again.texts == pool.texts  # seeded
    other = read_pool(path, max_unlabeled=200, seed=1, warn=False)
    assert other.texts != pool.texts


def test_bad_pools_are_refused_with_where(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(DataError, match="no unlabeled text left.*2 blank"):
        read_pool(empty, max_unlabeled=10)
    with pytest.raises(DataError, match="no unlabeled text left.*1 also in the labelled"):
        read_pool(["same"], labelled=["same"], max_unlabeled=10)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: no text in field 'text' \(got int\)"):
        read_pool(bad, max_unlabeled=10)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        read_pool(broken, max_unlabeled=10)
    with pytest.raises(DataError, match="unsupported file type '.parquet'"):
        read_pool(tmp_path / "x.parquet", max_unlabeled=10)
    with pytest.raises(DataError, match="does not exist"):
        read_pool(tmp_path / "missing.txt", max_unlabeled=10)
    with pytest.raises(DataError, match=r"unlabeled\[1\] is int"):
        read_pool(["a", 1], max_unlabeled=10)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_pool(latin, max_unlabeled=10)
    with pytest.raises(ConfigError, match="pseudo_label_share"):
        UnlabeledArguments(pseudo_label_share=0)
    with pytest.raises(ConfigError, match="max_unlabeled"):
        UnlabeledArguments(max_unlabeled=0)


# ---------------------------------------------------------------- self-training on features
def clusters(n_per_class, noise, seed, shift=0.0):
    """Three classes around fixed directions in 16 dimensions."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.eye(16)[:3] * 3
    labels = torch.arange(3).repeat_interleave(n_per_class)
    points = centers[labels] + noise * torch.randn(len(labels), 16, generator=generator)
    return points + shift, labels


def test_self_training_learns_the_clusters_from_the_pool():
    """One skewed example per class: the pool's structure moves the boundary where the
    classes are, so held-out points are classified better."""
    support, labels = clusters(1, 2.0, seed=3)
    pool, _ = clusters(200, 1.0, seed=4)
    test, truth = clusters(300, 1.0, seed=5)
    fit = head_fit(EpisodeHead("logreg"), 3)
    weights = torch.ones(len(labels))
    options = UnlabeledArguments()
    plain = (fit(support, labels, weights)(test).argmax(-1) == truth).float().mean()
    scorer, chosen = self_train(fit, support, labels, weights, pool, 3, options)
    trained = (scorer(test).argmax(-1) == truth).float().mean()
    assert trained > plain + 0.05
    # class-balanced: the last round keeps at most share * pool / classes per class
    share = options.pseudo_label_share
    assert torch.bincount(chosen.labels, minlength=3).max() <= share * 600 / 3
    assert chosen.weight == options.pseudo_label_weight


def test_the_kfold_rule_keeps_out_a_pool_that_hurts_held_out_examples():
    support, labels = clusters(4, 0.5, seed=1)
    weights, is_name = torch.ones(len(labels)), torch.zeros(len(labels), dtype=torch.bool)
    pool, _ = clusters(50, 0.5, seed=2)
    real = head_fit(EpisodeHead("logreg"), 3)

    def sabotaged(x, y, w):  # any fit that saw pool rows predicts the next class
        scorer = real(x, y, w)
        if len(x) > len(labels):
            return lambda f: scorer(f).roll(1, dims=-1)
        return scorer

    options = UnlabeledArguments()
    check = check_pool(real, support, labels, weights, is_name, pool, 3, options)
    assert check.helps and check.held_out == 12 and check.folds == 5
    bad = check_pool(sabotaged, support, labels, weights, is_name, pool, 3, options)
    assert not bad.helps and bad.accuracy_with < bad.accuracy_without
    # a head that gets too few held-out examples right makes pseudo-labels too noisy
    from fewshot_nlp.unlabeled.self_training import PoolCheck

    noisy = PoolCheck(5, 20, accuracy_without=0.7, accuracy_with=0.9, min_accuracy=0.75)
    assert not noisy.helps
    assert PoolCheck(5, 20, accuracy_without=0.8, accuracy_with=0.8, min_accuracy=0.75).helps
    # one example per class and no names: nothing can be held out, so no evidence
    lone = check_pool(real, support[::4], labels[::4], weights[::4], is_name[::4], pool, 3, options)
    assert not lone.helps and "no labelled example can be held out" in lone.reason
    # with the names as rows, one example per class can be held out
    named = torch.cat([support[::4], torch.eye(16)[:3] * 3])
    flags = torch.tensor([False] * 3 + [True] * 3)
    ones, ids = torch.ones(6), torch.cat([labels[::4], torch.arange(3)])
    assert check_pool(real, named, ids, ones, flags, pool, 3, options).held_out == 3


# ---------------------------------------------------------------- adapt, export, grow
def test_adapt_with_a_pool_exports_a_standard_checkpoint_that_records_it(mean_model, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from fewshot_nlp.classifier import grow
    from fewshot_nlp.classifier.class_memory import ClassMemory
    from fewshot_nlp.export import export

    options = UnlabeledArguments(pool_rule="always")
    with pytest.warns(UserWarning, match="dropped 1 blank"):
        adapted = adapt_with_unlabeled(mean_model, FEW, POOL, unlabeled_args=options)
    record = adapted.config.fewshot_nlp_adaptation["unlabeled"]
    assert record["used"] and record["pool"]["texts"] == 6 and record["check"] is None
    assert record["pseudo_labelled"] == len(adapted.fewshot_nlp_classes.labels) - 9 - 3
    out = export(adapted, AutoTokenizer.from_pretrained(mean_model), tmp_path / "clf")
    card = (out / "README.md").read_text()
    assert "**Unlabeled text:** a pool of 6 unlabeled texts; dropped 1 blank" in card
    assert "self-trained" in card
    memory = ClassMemory.load(out)
    assert (memory.weights == 0.5).sum() == record["pseudo_labelled"]
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert set(loaded.config.id2label.values()) == {"card_arrival", "top_up", "exchange_rate"}
    assert pipeline("text-classification", model=str(out))("add money")[0]["label"]
    # the head is the one a refit of the stored rows gives: growth starts from it
    grown = grow(out, [("freeze my card", "card_block"), ("block the card", "card_block")])
    assert grown.config.num_labels == 4
    assert grown.fewshot_nlp_classes.weights.eq(0.5).sum() == record["pseudo_labelled"]
    # an export grows (its pseudo-labelled rows kept); it is not adapted again with a pool
    with pytest.raises(ConfigError, match="is an exported classifier"):
        adapt_with_unlabeled(out, FEW, POOL)


def test_the_kfold_rule_and_its_record(mean_model):
    from fewshot_nlp import AdaptationArguments

    with pytest.warns(UserWarning):
        adapted = adapt_with_unlabeled(mean_model, FEW, POOL, AdaptationArguments(max_length=12))
    assert adapted.fewshot_nlp_classes.max_length == 12  # the pool is read as adapt reads
    record = adapted.config.fewshot_nlp_adaptation["unlabeled"]
    check = record["check"]
    assert record["rule"] == "kfold" and check["folds"] >= 2 and check["held_out"] == 9
    good = check["accuracy_without"] >= check["min_accuracy"] == 0.75
    assert record["used"] == (good and check["accuracy_with"] >= check["accuracy_without"])
    pseudo = (adapted.fewshot_nlp_classes.weights == 0.5).sum()
    assert (
        int(pseudo)
        == record["pseudo_labelled"]
        == (record["pseudo_labelled"] if record["used"] else 0)
    )


def test_a_pool_kept_out_leaves_the_plain_adaptation(mean_model, tokenizer):
    """The wing adds to adapt, it does not change it: with the pool kept out by the rule,
    the classifier scores as the plain adaptation does."""
    from fewshot_nlp.classifier import adapt

    plain = adapt(mean_model, FEW)
    strict = UnlabeledArguments(min_held_out_accuracy=1.0)
    with pytest.warns(UserWarning):
        adapted = adapt_with_unlabeled(mean_model, FEW, POOL, unlabeled_args=strict)
    record = adapted.config.fewshot_nlp_adaptation["unlabeled"]
    assert not record["used"] and record["check"]["accuracy_without"] < 1.0
    assert record["pseudo_labelled"] == 0
    inputs = tokenizer(["add money please", "my card?"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).logits, adapted(**inputs).logits)


# ---------------------------------------------------------------- the command line
def test_cli_adapt_with_an_unlabeled_file(mean_model, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", FEW)
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(POOL) + "\n")
    out = tmp_path / "clf"
    argv = ["adapt", "--model", str(mean_model), "--train_file", str(train)]
    argv += ["--unlabeled_file", str(pool), "--pool_rule", "always", "--output_dir", str(out)]
    assert cli_main(argv) == 0
    said = capsys.readouterr()
    assert "Unlabeled pool: 6 texts: used (" in said.out
    assert "dropped 1 blank, 1 repeated, 1 also in the labelled examples" in said.err
    config = json.loads((out / "config.json").read_text())
    assert config["fewshot_nlp_adaptation"]["unlabeled"]["used"]


def test_cli_refuses_pool_requests_it_cannot_do_before_the_work(mean_model, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", FEW)
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(POOL) + "\n")
    base = ["adapt", "--model", str(mean_model), "--train_file", str(train)]
    cases = [
        (["--unlabeled_file", str(tmp_path / "none.txt")], "does not exist"),
        (["--unlabeled_file", str(tmp_path / "p.xlsx")], "unsupported file type"),
        (["--unlabeled_file", str(pool), "--unknown_label", "other"], "do not go together"),
        (["--unlabeled_file", str(pool), "--max_unlabeled", "0"], "max_unlabeled must be"),
        (["--unlabeled_file", str(pool), "--episode_pool", "9"], "adapt reads one pool"),
    ]
    multi = tmp_path / "multi.jsonl"
    multi.write_text(json.dumps({"text": "a b", "labels": ["x", "y"]}) + "\n")
    cases.append(
        (["--train_file", str(multi), "--unlabeled_file", str(pool)], "not by multi-label")
    )
    for i, (flags, message) in enumerate(cases):
        out = tmp_path / f"o{i}"
        assert cli_main([*base, "--output_dir", str(out), *flags]) == 2, flags
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_cli_evaluate_pairs_each_method_with_and_without_the_pool(
    mean_model, tmp_path, capsys, data_dir
):
    train = write_jsonl(tmp_path / "train.jsonl", FEW)
    test = write_jsonl(tmp_path / "test.jsonl", [(t, y) for t, y in FEW[::-1]])
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(POOL) + "\n")
    argv = ["evaluate", "--model", str(mean_model), "--train_file", str(train)]
    argv += ["--test_file", str(test), "--baseline_model", str(mean_model)]
    methods = ["--method", "maml", "maml+pool", "maml-base", "maml-base+pool"]
    out = tmp_path / "results.json"
    fixed = [*argv, *methods, "logreg", "logreg+pool", "--unlabeled_file", str(pool)]
    assert cli_main([*fixed, "--output_file", str(out)]) == 0
    rows = {row["method"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {
        "maml",
        "maml+pool",
        "maml-base",
        "maml-base+pool",
        "logreg",
        "logreg+pool",
    }
    assert "Unlabeled pool: 6 unlabeled texts" in capsys.readouterr().out
    # episodic: a pool per episode from the dataset's other texts
    episodic = ["evaluate", "--model", str(mean_model), "--data_dir", str(data_dir)]
    episodic += ["--dataset", "snips", "--k_shot", "1", "--episodes", "2", "--q_query", "2"]
    assert cli_main([*episodic, *methods, "--episode_pool", "20"]) == 0
    table = capsys.readouterr().out
    assert "maml-base+pool" in table
    # the pool and the pool methods go together
    assert cli_main([*episodic, "--method", "maml+pool"]) == 2
    assert "--episode_pool N" in capsys.readouterr().err
    assert cli_main([*episodic, "--method", "maml", "--episode_pool", "20"]) == 2
    assert "add --method maml+pool" in capsys.readouterr().err


def test_episode_pools_hold_no_support_or_query_text_and_their_distractor_share(data_dir):
    from fewshot_nlp import TaskSource
    from fewshot_nlp.evaluation.methods import Task
    from fewshot_nlp.unlabeled.evaluation import TaskPools

    source = TaskSource.from_data_dir("snips", str(data_dir), split="train")
    names = source.label_names[:2]
    texts = {n: [t for t, y in zip(source.texts, source.labels) if y == n] for n in names}
    task = Task(
        texts[names[0]][:1] + texts[names[1]][:1],
        [0, 1],
        2,
        texts[names[0]][1:3] + texts[names[1]][1:3],
        label_names=names,
    )
    pools = TaskPools(UnlabeledArguments(), source=source, size=50, distractor_share=0.2)
    pool = pools.pool_for(task)
    assert len(pool) == 50 and pools.pool_for(task) == pool  # the same for every method
    assert not set(pool) & (set(task.support_texts) | set(task.query_texts))
    label_of = dict(zip(source.texts, source.labels))
    assert sum(label_of[t] not in names for t in pool) == 10
