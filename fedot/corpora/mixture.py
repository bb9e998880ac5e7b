"""Fixed-length blocks of the owner's text, from one corpus or a weighted mixture, drawn reproducibly.

``"gutenberg"`` is one corpus; ``"gutenberg:0.7,wikitext103:0.3"`` a mixture whose every sequence comes from a
corpus drawn by weight. The blocks of a batch are drawn by a generator seeded with a key the caller gives (e.g.
``"seed:step"``), so a run that resumes at step s draws what an uninterrupted one would; with one corpus the draw is
``random.Random(key).sample`` over its blocks, as fedot drew from a list of blocks before corpora were streamed.
Held-out blocks are spread evenly over each corpus's validation split (in proportion to the weights), not its
first pages.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .stream import TokenStream, token_stream


def parse_mixture(spec: str, allowed: tuple[str, ...], key: str = "corpus") -> list[tuple[str, float]]:
    """``"a"`` or ``"a:w1,b:w2"`` as [(corpus, weight)], weights normalised to sum to 1; errors name ``key``."""
    try:
        return _parse(spec, allowed)
    except ValueError as e:
        raise ValueError(f"{key} = {spec!r}: {e}") from None


def _parse(spec: str, allowed: tuple[str, ...]) -> list[tuple[str, float]]:
    parts = []
    for item in (s.strip() for s in str(spec).split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        name = name.strip()
        if name not in allowed:
            raise ValueError(f"corpus {name!r} is not one of {', '.join(allowed)}")
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"corpus weight {weight!r} is not a number; write e.g. "
                             "'gutenberg:0.7,wikitext103:0.3'") from None
        if not w > 0:
            raise ValueError(f"the weight of {name!r} must be positive")
        if name in (p[0] for p in parts):
            raise ValueError(f"corpus {name!r} appears twice")
        parts.append((name, w))
    if not parts:
        raise ValueError("the corpus is empty; name one, e.g. 'gutenberg', or a mixture such as "
                         "'gutenberg:0.7,wikitext103:0.3'")
    total = sum(w for _, w in parts)
    return [(n, w / total) for n, w in parts]


def allocate(k: int, weights: list[float]) -> list[int]:
    """``k`` items split by ``weights`` (largest remainder), at least one each when k allows."""
    raw = [k * w for w in weights]
    counts = [max(1 if k >= len(weights) else 0, int(r)) for r in raw]
    order = sorted(range(len(weights)), key=lambda i: -(raw[i] - int(raw[i])))
    i = 0
    while sum(counts) < k:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts) > k:
        j = max(range(len(counts)), key=lambda j: counts[j])
        counts[j] -= 1
    return counts


class OwnerText:
    """The owner's text as blocks of ``length`` tokens (train split to fit, validation split to check)."""

    def __init__(self, spec: str, tokenizer, length: int, root=None, allowed: tuple[str, ...] | None = None,
                 streams: Callable[[str, str], TokenStream] | None = None):
        from .sources import CORPORA

        self.spec, self.length = spec, length
        self.parts = parse_mixture(spec, allowed or CORPORA.names(), "owner text")
        stream = streams or (lambda name, split: token_stream(name, split, tokenizer, root))
        self.train = [stream(name, "train") for name, _ in self.parts]
        self.validation = [stream(name, "validation") for name, _ in self.parts]
        for (name, _), tr, va in zip(self.parts, self.train, self.validation):
            if not tr.num_blocks(length) or not va.num_blocks(length):
                raise ValueError(f"corpus {name!r} has too little text for blocks of {length} tokens (train "
                                 f"{tr.n_tokens:,} tokens, validation {va.n_tokens:,}); use shorter sequences or a "
                                 "larger corpus")

    @property
    def weights(self) -> list[float]:
        return [w for _, w in self.parts]

    def train_tokens(self) -> int:
        """Tokens in full training blocks (one pass over the corpus, or the mixture)."""
        return sum(s.num_blocks(self.length) * self.length for s in self.train)

    def draw(self, key: str | random.Random, k: int, split: str = "train") -> list[tuple[int, int]]:
        """(corpus, block) of ``k`` blocks of ``split`` drawn by ``random.Random(key)`` (or by the generator given)."""
        rng = key if isinstance(key, random.Random) else random.Random(key)
        streams = self.train if split == "train" else self.validation
        if len(self.parts) == 1:
            n = streams[0].num_blocks(self.length)
            return [(0, i) for i in rng.sample(range(n), min(k, n))]
        out = []
        for _ in range(k):
            c = rng.choices(range(len(self.parts)), weights=self.weights)[0]
            out.append((c, rng.randrange(streams[c].num_blocks(self.length))))
        return out

    def blocks(self, picks: list[tuple[int, int]], split: str = "train") -> list[list[int]]:
        streams = self.train if split == "train" else self.validation
        return [streams[c].block(i, self.length) for c, i in picks]

    def batch(self, key: str | random.Random, k: int, split: str = "train") -> list[list[int]]:
        return self.blocks(self.draw(key, k, split), split)

    def held_out_picks(self, k: int) -> list[tuple[int, int]]:
        """``k`` validation blocks, spread evenly over each corpus's validation split, in proportion to weight."""
        picks = []
        for c, count in enumerate(allocate(k, self.weights)):
            n = self.validation[c].num_blocks(self.length)
            picks += [(c, i) for i in sorted({int(j * n / count) for j in range(count)})] if count else []
        return picks

    def held_out(self, k: int) -> list[list[int]]:
        return self.blocks(self.held_out_picks(k), "validation")
