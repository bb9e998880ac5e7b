"""Split a model's blocks into a trainable adapter and a frozen middle (offsite-tuning §4.1-4.2).

A :class:`Split` only holds block indices; it is computed from the block count alone, so impossible requests fail
before any weight is read. "Block" is what the papers call a layer: one transformer block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class SplitError(ValueError):
    pass


def uniform_layer_drop(m: int, k: int) -> list[int]:
    """Algorithm 1 (Uniform Layer-drop): keep ``k`` of ``m`` blocks at stride (m-1)/(k-1), first and last kept."""
    if m < 0 or k < 0:
        raise SplitError(f"block counts must be non-negative (m={m}, k={k})")
    if k > m:
        raise SplitError(f"cannot keep {k} blocks of a middle of {m}; choose emulator-blocks <= {m}")
    if k == 0:
        return []
    if k == 1:
        if m == 1:
            return [0]
        raise SplitError(f"k=1 cannot keep both the first and last of {m} middle blocks (Algorithm 1); "
                         "choose k >= 2 or k = 0")
    stride = (m - 1) / (k - 1)
    # The tiny epsilon guards against float error turning e.g. 2.9999999 into 2.
    return [int(math.floor(j * stride + 1e-9)) for j in range(k)]


@dataclass(frozen=True)
class Split:
    """Block indices (in the full model's numbering) of the adapter and of the emulator.

    ``adapter`` need not be a sandwich (ScaleOT chooses adapter blocks by importance);
    ``emulator`` lists the middle blocks the emulator keeps, in order.
    """

    num_blocks: int
    adapter: tuple[int, ...]
    emulator: tuple[int, ...]

    @property
    def middle(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_blocks) if i not in set(self.adapter))

    @property
    def kept(self) -> tuple[int, ...]:
        """Blocks present in the emulator artifact, in forward order."""
        return tuple(sorted(set(self.adapter) | set(self.emulator)))

    @property
    def lossless(self) -> bool:
        """Every middle block kept: the 'emulator' is the whole model."""
        return set(self.emulator) == set(self.middle)

    def to_local(self) -> dict[int, int]:
        """Map full-model block index -> emulator-artifact block index."""
        return {orig: local for local, orig in enumerate(self.kept)}

    def to_original(self) -> dict[int, int]:
        """Map emulator-artifact block index -> full-model block index."""
        return dict(enumerate(self.kept))

    def validate(self) -> Split:
        if len(set(self.adapter)) != len(self.adapter) or len(set(self.emulator)) != len(self.emulator):
            raise SplitError("adapter and emulator block lists must not repeat a block")
        bad = [i for i in (*self.adapter, *self.emulator) if not 0 <= i < self.num_blocks]
        if bad:
            raise SplitError(f"block indices {bad} are outside the model's {self.num_blocks} blocks")
        if set(self.adapter) & set(self.emulator):
            raise SplitError("a block cannot be both adapter and emulator")
        if not self.adapter:
            raise SplitError("the adapter must contain at least one block")
        if not self.middle:
            raise SplitError(f"the adapter covers all {self.num_blocks} blocks, leaving nothing to emulate; "
                             "use fewer adapter blocks")
        return self


def sandwich(num_blocks: int, bottom: int = 2, top: int = 2, emulator_blocks: int = -1) -> Split:
    """The paper's sandwich adapter: ``bottom`` + ``top`` blocks, ``emulator_blocks`` kept of the middle.

    ``emulator_blocks=-1`` keeps every middle block (a lossless emulator, useful as a check and as the frontier's
    ceiling).
    """
    if bottom < 0 or top < 0 or emulator_blocks < -1:
        raise SplitError(f"bottom, top and emulator-blocks must be non-negative (emulator-blocks -1: all); got "
                         f"{bottom}, {top}, {emulator_blocks}")
    if bottom + top == 0:
        raise SplitError("the adapter must have at least one block: set bottom or top >= 1")
    if bottom + top >= num_blocks:
        raise SplitError(f"an adapter of {bottom}+{top} blocks covers the whole {num_blocks}-block model; "
                         f"use bottom + top <= {num_blocks - 1}")
    middle = list(range(bottom, num_blocks - top))
    k = len(middle) if emulator_blocks < 0 else emulator_blocks
    kept = uniform_layer_drop(len(middle), k)
    adapter = tuple(range(bottom)) + tuple(range(num_blocks - top, num_blocks))
    return Split(num_blocks, adapter, tuple(middle[i] for i in kept)).validate()
