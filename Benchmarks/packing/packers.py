"""Reference packers on sequence lengths, written apart from mbdata's Swift code.

- `pieces`: the overlong policy, as mbdata applies it: `split` cuts a sample longer than L into
  L-token pieces and a shorter last one, `drop` leaves it out;
- `first_fit`: classic first-fit (each piece into the lowest-numbered row with room), O(n log n)
  with a max-segment tree over the rows' free space;
- `windowed_first_fit`: mbdata's SequencePacker, re-implemented: first-fit within windows of W
  consecutive samples, nothing carried between windows (used to check the figures mbdata reports);
- `first_fit_decreasing`: first-fit on the pieces sorted longest first — the greedy bound a
  packer that sees the whole epoch at once can reach (FFD uses at most 11/9 OPT + 6/9 rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass
class Packed:
    """What packing did: rows made, tokens placed, samples split or dropped."""

    row_length: int
    samples: int = 0
    rows: int = 0
    tokens: int = 0
    split_samples: int = 0
    dropped_samples: int = 0
    dropped_tokens: int = 0

    @property
    def efficiency(self) -> float:
        return self.tokens / (self.rows * self.row_length) if self.rows else 0.0

    def add(self, other: "Packed") -> None:
        for field in fields(self):
            if field.name != "row_length":
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict:
        return {**asdict(self), "efficiency": self.efficiency}


def pieces(lengths: np.ndarray, row_length: int, overlong: str) -> tuple[np.ndarray, Packed]:
    """The pieces packing places, in input order, and the split/drop counts."""
    lengths = np.asarray(lengths, dtype=np.int64)
    stats = Packed(row_length, samples=len(lengths))
    long = lengths > row_length
    if overlong == "drop":
        stats.dropped_samples = int(long.sum())
        stats.dropped_tokens = int(lengths[long].sum())
        kept = lengths[~long & (lengths > 0)]
        return kept, stats
    if overlong != "split":
        raise ValueError(f"overlong must be split or drop, not {overlong}")
    stats.split_samples = int(long.sum())
    counts = np.maximum(1, -(-lengths // row_length))  # pieces per sample
    out = np.full(int(counts.sum()), row_length, dtype=np.int64)
    last = np.cumsum(counts) - 1
    out[last] = lengths - (counts - 1) * row_length
    return out[out > 0], stats


def _first_fit_rows(sizes: np.ndarray, row_length: int) -> int:
    """Rows first-fit opens for `sizes` (each 1…row_length), in that order."""
    n = len(sizes)
    if n == 0:
        return 0
    leaves = 1 << (n - 1).bit_length()
    tree = [row_length] * (2 * leaves)  # max free space below each node; unopened rows are empty
    used = 0
    for size in sizes.tolist():
        node = 1
        while node < leaves:
            node = 2 * node if tree[2 * node] >= size else 2 * node + 1
        row = node - leaves
        if row >= used:
            used = row + 1
        tree[node] -= size
        node //= 2
        while node:
            left, right = tree[2 * node], tree[2 * node + 1]
            tree[node] = left if left >= right else right
            node //= 2
    return used


def first_fit(lengths: np.ndarray, row_length: int, overlong: str = "split") -> Packed:
    """Unwindowed first-fit over the whole input, in input order."""
    sizes, stats = pieces(lengths, row_length, overlong)
    stats.rows = _first_fit_rows(sizes, row_length)
    stats.tokens = int(sizes.sum())
    return stats


def first_fit_decreasing(lengths: np.ndarray, row_length: int, overlong: str = "split") -> Packed:
    """First-fit on every piece of the input, longest first."""
    sizes, stats = pieces(lengths, row_length, overlong)
    stats.rows = _first_fit_rows(np.sort(sizes)[::-1], row_length)
    stats.tokens = int(sizes.sum())
    return stats


def windowed_first_fit(lengths: np.ndarray, row_length: int, window: int, overlong: str = "split") -> Packed:
    """mbdata's packer: first-fit within each window of `window` consecutive samples."""
    total = Packed(row_length)
    for start in range(0, len(lengths), window):
        total.add(first_fit(lengths[start:start + window], row_length, overlong))
    return total
