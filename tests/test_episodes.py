from collections import Counter

import numpy as np
import pytest

from fewshot_nlp import ConfigError, DataError, EpisodeCollator, EpisodeSampler, TaskSource


@pytest.fixture(scope="module")
def sources(data_dir):
    return [
        TaskSource.from_data_dir("trec", data_dir, split="test"),
        TaskSource.from_data_dir("snips", data_dir, split="validation"),
        TaskSource.from_data_dir("banking77", data_dir, split="test", fold="01", part="train"),
    ]


def _key(ep):
    return (ep.source, tuple(ep.label_names), tuple(ep.support_texts), tuple(ep.query_texts))


def test_same_seed_same_episodes(sources):
    a = EpisodeSampler(sources, 3, 2, 3, seed=7)
    b = EpisodeSampler(sources, 3, 2, 3, seed=7)
    assert [_key(a.sample()) for _ in range(20)] == [_key(b.sample()) for _ in range(20)]
    c = EpisodeSampler(sources, 3, 2, 3, seed=8)
    assert [_key(c.sample()) for _ in range(5)] != [_key(a.episode(i)) for i in range(5)]


def test_support_query_disjoint_and_labels_map_back(sources):
    sampler = EpisodeSampler(sources, 4, 3, 2, seed=1)
    by_name = {s.name: s for s in sources}
    for _ in range(30):
        ep = sampler.sample()
        assert ep.n_way == 4
        assert sorted(set(ep.support_labels)) == [0, 1, 2, 3]
        assert Counter(ep.support_labels) == {i: 3 for i in range(4)}
        assert Counter(ep.query_labels) == {i: 2 for i in range(4)}
        source = by_name[ep.source]
        support_ids = set()
        for text, y in zip(ep.support_texts, ep.support_labels):
            ids = [i for i in source.label_index[ep.label_names[y]] if source.texts[i] == text]
            assert ids, "support text not found under its label name"
            support_ids.update(ids)
        for text, y in zip(ep.query_texts, ep.query_labels):
            ids = {i for i in source.label_index[ep.label_names[y]] if source.texts[i] == text}
            assert ids and not ids <= support_ids


def test_fold_restriction_never_leaks_test_labels(data_dir):
    import json

    test_labels = set(
        json.loads((data_dir / "banking77" / "splits.json").read_text())["folds"]["01"]["test"]
    )
    train = TaskSource.from_data_dir("banking77", data_dir, split="train", fold="01", part="train")
    sampler = EpisodeSampler([train], 5, 1, 1, seed=0)
    seen = {name for _ in range(200) for name in sampler.sample().label_names}
    assert not seen & test_labels


def test_temperature_mixing(sources):
    sizes = np.array([len(s) for s in sources], dtype=float)
    for temperature in (0.0, 1.0, 0.5):
        sampler = EpisodeSampler(sources, 2, 1, 1, temperature=temperature, seed=3)
        counts = Counter(sampler.episode(i).source for i in range(3000))
        expected = sizes**temperature / (sizes**temperature).sum()
        for s, p in zip(sources, expected):
            assert abs(counts[s.name] / 3000 - p) < 0.03, (temperature, s.name)


def test_variable_and_all_way(sources):
    sampler = EpisodeSampler(sources, (2, 10), 1, 1, seed=0)
    ways = [sampler.sample() for _ in range(200)]
    by_source = {}
    for ep in ways:
        by_source.setdefault(ep.source, set()).add(ep.n_way)
    assert by_source["trec"] <= set(range(2, 7))  # capped by the 6 TREC classes
    assert len(by_source["banking77"]) > 3 and max(by_source["banking77"]) <= 10
    full = EpisodeSampler(sources[:1], "all", 1, 1).sample()
    assert full.n_way == 6


def test_per_process_streams(sources):
    single = EpisodeSampler(sources, 3, 1, 1, seed=5)
    r0 = single.for_process(0, 2)
    r1 = single.for_process(1, 2)
    k0 = [_key(r0.sample()) for _ in range(10)]
    k1 = [_key(r1.sample()) for _ in range(10)]
    assert not set(k0) & set(k1)
    assert k0 == [_key(single.episode(2 * i)) for i in range(10)]
    assert k1 == [_key(single.episode(2 * i + 1)) for i in range(10)]
    again = EpisodeSampler(sources, 3, 1, 1, seed=5, rank=1, world_size=2)
    assert [_key(again.sample()) for _ in range(10)] == k1


def test_state_dict_resumes_stream(sources):
    a = EpisodeSampler(sources, 3, 1, 1, seed=2)
    for _ in range(4):
        a.sample()
    b = EpisodeSampler(sources, 3, 1, 1, seed=2)
    b.load_state_dict(a.state_dict())
    assert _key(a.sample()) == _key(b.sample())


def test_collator_pads_dynamically_and_pairs(data_dir, tokenizer):
    pairs = TaskSource.from_data_dir("scitail", data_dir, split="test")
    ep = EpisodeSampler([pairs], 2, 2, 2, seed=0).sample()
    batch = EpisodeCollator(tokenizer, max_length=64)(ep)
    assert batch.support["input_ids"].shape[0] == 4
    assert batch.support["input_ids"].shape[1] <= 64
    assert int(batch.support["token_type_ids"].max()) == 1  # the pair's second segment
    assert batch.query_labels.tolist() == ep.query_labels
    short = EpisodeCollator(tokenizer, max_length=8)(ep)
    assert short.query["input_ids"].shape[1] == 8


# ---------------------------------------------------------------- bad input
def test_n_way_too_large_names_source(sources):
    with pytest.raises(ConfigError, match=r"n_way=7.*'trec' has only 6"):
        EpisodeSampler(sources, 7, 1, 1)


def test_k_shot_may_be_zero_but_not_negative(sources):
    with pytest.raises(ConfigError, match="k_shot must be >= 0, got -1"):
        EpisodeSampler(sources, 2, -1, 1)
    with pytest.raises(ConfigError, match="q_query must be >= 1, got 0"):
        EpisodeSampler(sources, 2, 1, 0)
    episode = EpisodeSampler(sources, 2, 0, 1).sample()  # 0-shot: label names only
    assert episode.support_texts == [] and len(episode.query_texts) == 2


def test_small_classes_dropped_with_warning():
    texts = [f"t{i}" for i in range(13)]
    labels = ["a"] * 5 + ["b"] * 5 + ["c"] * 3
    source = TaskSource(name="toy", texts=texts, labels=labels)
    with pytest.warns(UserWarning, match="1 of 3 classes"):
        sampler = EpisodeSampler([source], 2, 2, 2)
    assert all("c" not in sampler.sample().label_names for _ in range(20))


def test_source_with_one_usable_class_is_an_error():
    source = TaskSource(name="tiny", texts=list("abcdefg"), labels=["a"] * 5 + ["b"] * 2)
    with pytest.raises(DataError, match=r"'tiny' has 1 class"), pytest.warns(UserWarning):
        EpisodeSampler([source], 2, 2, 2)
