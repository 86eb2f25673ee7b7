"""Near-duplicate detection: agency copy is printed almost word for word by several papers.

MinHash over word 5-shingles of the folded text (so diacritics, alef forms and digits don't matter),
with LSH banding to find candidates quickly; a candidate counts as a copy when the estimated Jaccard
similarity of the shingle sets reaches the threshold. Signatures are stored with each article so later
ingests compare against everything already indexed without re-reading it.
"""

from __future__ import annotations

import base64
import zlib
from collections import defaultdict

import numpy as np

from assistant.text import words

PERMUTATIONS = 64
BANDS = 16  # 16 bands of 4 rows: pairs above ~0.5 Jaccard become candidates
SHINGLE_WORDS = 5
_PRIME = np.uint64((1 << 61) - 1)
_rng = np.random.default_rng(20150801)  # fixed: signatures must be comparable across runs
_A = _rng.integers(1, 1 << 32, PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, 1 << 32, PERMUTATIONS, dtype=np.uint64)


def signature(text: str) -> np.ndarray:
    tokens = words(text)
    shingles = {" ".join(tokens[i : i + SHINGLE_WORDS]) for i in range(max(1, len(tokens) - SHINGLE_WORDS + 1))}
    hashes = np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64, count=len(shingles))
    # (a*h + b) mod p per permutation, min over shingles; h, a, b < 2^32 so a*h + b < 2^64: no overflow.
    permuted = (np.outer(hashes, _A) + _B) % _PRIME
    return permuted.min(axis=0).astype(np.uint64)


def encode(sig: np.ndarray) -> str:
    return base64.b64encode(sig.astype("<u8").tobytes()).decode("ascii")


def decode(text: str) -> np.ndarray | None:
    if not text:
        return None
    raw = base64.b64decode(text)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64) if len(raw) == PERMUTATIONS * 8 else None


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


class NearDuplicateIndex:
    """Find the stored text an incoming one is a near copy of."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._buckets: dict[tuple[int, bytes], list[str]] = defaultdict(list)
        self._signatures: dict[str, np.ndarray] = {}

    def add(self, key: str, sig: np.ndarray) -> None:
        self._signatures[key] = sig
        for band in self._bands(sig):
            self._buckets[band].append(key)

    def remove(self, key: str) -> None:
        sig = self._signatures.pop(key, None)
        if sig is not None:
            for band in self._bands(sig):
                self._buckets[band].remove(key)

    def find(self, sig: np.ndarray) -> str | None:
        """The most similar stored key at or above the threshold, else None."""
        candidates = {key for band in self._bands(sig) for key in self._buckets.get(band, ())}
        best, best_score = None, self.threshold
        for key in sorted(candidates):
            score = similarity(sig, self._signatures[key])
            if score >= best_score:
                best, best_score = key, score
        return best

    @staticmethod
    def _bands(sig: np.ndarray):
        rows = PERMUTATIONS // BANDS
        return [(b, sig[b * rows : (b + 1) * rows].tobytes()) for b in range(BANDS)]
