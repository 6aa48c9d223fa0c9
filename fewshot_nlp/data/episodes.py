"""N-way K-shot episodes drawn from many `TaskSource`s, reproducibly and per process."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .sources import TaskSource


@dataclass
class Episode:
    """One few-shot task: support and query examples with labels 0..N-1."""

    support_texts: list[str]
    support_labels: list[int]
    query_texts: list[str]
    query_labels: list[int]
    label_names: list[str]
    source: str
    support_text_pairs: list[str] | None = None
    query_text_pairs: list[str] | None = None

    @property
    def n_way(self) -> int:
        return len(self.label_names)


NWay = int | tuple[int, int] | str


class EpisodeSampler:
    """An endless, seeded stream of episodes mixed across sources.

    Episode ``g`` of the global stream depends only on ``(seed, g)``. Process ``rank`` of
    ``world_size`` takes episodes ``rank, rank + world_size, ...``: the processes together
    draw exactly what a single process would, which is what makes a multi-process meta-batch
    equal to a one-process one.
    """

    def __init__(
        self,
        sources: Sequence[TaskSource],
        n_way: NWay,
        k_shot: int,
        q_query: int,
        *,
        temperature: float = 1.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not sources:
            raise ConfigError("EpisodeSampler needs at least one TaskSource.")
        check_counts([("q_query", q_query)])
        check_counts([("k_shot", k_shot)], minimum=0)  # 0: label names only
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}.")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        self.n_way = _check_n_way(n_way)
        self.k_shot, self.q_query = k_shot, q_query
        self.temperature, self.seed = float(temperature), int(seed)
        self.rank, self.world_size = rank, world_size
        self.sources = list(sources)
        self._classes = [self._usable_classes(source) for source in self.sources]
        sizes = np.array(
            [
                sum(len(s.label_index[c]) for c in classes)
                for s, classes in zip(self.sources, self._classes)
            ],
            dtype=np.float64,
        )
        weights = sizes**self.temperature
        self.source_probs = weights / weights.sum()
        self._position = 0  # episodes this process has drawn

    # ------------------------------------------------------------------ set-up checks
    def _usable_classes(self, source: TaskSource) -> list[str]:
        need = self.k_shot + self.q_query
        usable = [c for c, ids in source.label_index.items() if len(ids) >= need]
        dropped = len(source.label_index) - len(usable)
        if dropped:
            warnings.warn(
                f"Source {source.name!r}: {dropped} of {len(source.label_index)} classes have "
                f"fewer than k_shot + q_query = {need} examples and are left out.",
                stacklevel=3,
            )
        if len(usable) < 2:
            raise DataError(
                f"Source {source.name!r} has {len(usable)} class(es) with at least k_shot + "
                f"q_query = {need} examples (of {len(source.label_index)} classes, "
                f"{len(source)} examples). Lower k_shot/q_query or drop this source."
            )
        if isinstance(self.n_way, int) and self.n_way > len(usable):
            raise ConfigError(
                f"n_way={self.n_way} but source {source.name!r} has only {len(usable)} usable "
                f"classes. Use a range such as n_way='2-{self.n_way}' (capped per source), "
                "n_way='all', or drop this source."
            )
        return usable

    # ------------------------------------------------------------------ sampling
    def for_process(self, rank: int, world_size: int) -> EpisodeSampler:
        """This sampler's stream as seen by one of ``world_size`` processes."""
        view = object.__new__(EpisodeSampler)
        view.__dict__.update(self.__dict__)
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        view.rank, view.world_size, view._position = rank, world_size, 0
        return view

    def episode(self, global_index: int) -> Episode:
        """Episode number ``global_index`` of the global stream (a pure function of seed)."""
        rng = np.random.default_rng([self.seed, int(global_index)])
        s = int(rng.choice(len(self.sources), p=self.source_probs))
        source, classes = self.sources[s], self._classes[s]
        n = self._draw_n(rng, len(classes))
        chosen = rng.choice(len(classes), size=n, replace=False)
        support, query = [], []
        for label, class_pos in enumerate(chosen):
            ids = source.label_index[classes[class_pos]]
            picked = rng.choice(len(ids), size=self.k_shot + self.q_query, replace=False)
            support += [(ids[j], label) for j in picked[: self.k_shot]]
            query += [(ids[j], label) for j in picked[self.k_shot :]]
        support = [support[i] for i in rng.permutation(len(support))]
        query = [query[i] for i in rng.permutation(len(query))]
        pairs = source.text_pairs
        return Episode(
            support_texts=[source.texts[i] for i, _ in support],
            support_labels=[y for _, y in support],
            query_texts=[source.texts[i] for i, _ in query],
            query_labels=[y for _, y in query],
            label_names=[classes[c] for c in chosen],
            source=source.name,
            support_text_pairs=None if pairs is None else [pairs[i] for i, _ in support],
            query_text_pairs=None if pairs is None else [pairs[i] for i, _ in query],
        )

    def _draw_n(self, rng: np.random.Generator, available: int) -> int:
        if self.n_way == "all":
            return available
        if isinstance(self.n_way, tuple):
            low, high = min(self.n_way[0], available), min(self.n_way[1], available)
            return int(rng.integers(low, high + 1))
        return self.n_way

    def sample(self) -> Episode:
        """The next episode of this process's stream."""
        episode = self.episode(self._position * self.world_size + self.rank)
        self._position += 1
        return episode

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    # ------------------------------------------------------------------ resumable state
    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "position": self._position,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed:
            raise ConfigError(
                f"Sampler state was saved with seed {state['seed']}, this sampler uses "
                f"{self.seed}: resume with the run's original seed."
            )
        # Rescale the position if the process count changed, so no global episode repeats.
        self._position = (state["position"] * state["world_size"]) // self.world_size


def parse_n_way(value) -> int | tuple[int, int] | str:
    """n_way as written in a flag or YAML: an int (5), a range ('2-10') or 'all'."""
    text = str(value).strip()
    if text == "all":
        return text
    if "-" in text:
        low, _, high = text.partition("-")
        if low.isdigit() and high.isdigit():
            return (int(low), int(high))
    elif text.isdigit():
        return int(text)
    raise ConfigError(f"n_way={value!r}: give an int (5), a range ('2-10') or 'all'.")


def check_counts(counts, prefix: str = "", minimum: int = 1) -> None:
    """``(name, value)`` pairs of episode counts (shots, queries, episodes): whole numbers
    >= ``minimum``. ``prefix`` is "--" where the names are CLI flags."""
    for name, value in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(
                f"{prefix}{name} must be >= {minimum}, got {value!r}; give a whole number."
            )


def _check_n_way(n_way: NWay) -> NWay:
    if n_way == "all":
        return n_way
    if isinstance(n_way, (tuple, list)) and len(n_way) == 2:
        low, high = int(n_way[0]), int(n_way[1])
        if not 2 <= low <= high:
            raise ConfigError(
                f"n_way range must satisfy 2 <= min <= max, got '{n_way[0]}-{n_way[1]}'."
            )
        return (low, high)
    if isinstance(n_way, int) and not isinstance(n_way, bool):
        if n_way < 2:
            raise ConfigError(f"n_way must be >= 2 (a task needs two classes), got {n_way}.")
        return n_way
    raise ConfigError(
        f"n_way must be an int >= 2, a range 'min-max' (e.g. '2-10') or 'all', got {n_way!r}."
    )
