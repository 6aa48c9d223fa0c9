"""`fewshot-nlp episodes`: sample episodes from the data directory and print them, with
each source's share of the mixture."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    from ..argument_parsing import parse_dataclasses
    from .arguments import EpisodesArguments

    (args,) = parse_dataclasses(
        (EpisodesArguments,),
        argv,
        prog="fewshot-nlp episodes",
        description="Sample and print episodes from the data directory.",
    )
    from ..data.episodes import EpisodeSampler, parse_n_way
    from ..data.sources import TaskSource

    sources = [TaskSource.from_spec(s, args.data_dir) for s in args.datasets]
    n_way = parse_n_way(args.n_way)
    sampler = EpisodeSampler(
        sources, n_way, args.k_shot, args.q_query, temperature=args.temperature, seed=args.seed
    )
    print(f"{'source':<12}{'examples':>10}{'classes':>9}{'p(source)':>11}")
    for s, p in zip(sources, sampler.source_probs):
        print(f"{s.name:<12}{len(s):>10}{len(s.label_index):>9}{p:>11.3f}")
    for i in range(args.episodes):
        ep = sampler.sample()
        print(f"\nepisode {i}: {ep.source}, {ep.n_way}-way: {', '.join(ep.label_names)}")
        for text, y in list(zip(ep.support_texts, ep.support_labels))[: 2 * ep.n_way]:
            print(f"  support [{ep.label_names[y]}] {text[:70]}")
    return 0
