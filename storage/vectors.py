"""Embedding vectors as stored (unit-length float32 bytes) and exact top-k by cosine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]


def unit(values: Sequence[float] | Vector) -> Vector:
    """The vector scaled to length 1 (cosine becomes a dot product); a zero vector stays 0."""
    vector = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def to_bytes(vector: Vector) -> bytes:
    """Little-endian float32: the same bytes on every backend and machine."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> Vector:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=False)


def stack(blobs: Sequence[bytes], dimension: int) -> Matrix:
    """Rows of stored vectors as one matrix (one copy, no per-row arrays)."""
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dimension)


def best_of(
    scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], k: int
) -> list[tuple[int, float]]:
    """(id, score) of the k best scores, best first, ties to the smaller id; -inf rows (gone)
    never come back."""
    if k <= 0 or not len(ids):
        return []
    order = np.lexsort((ids, -scores))[:k]
    return [(int(ids[i]), float(scores[i])) for i in order if np.isfinite(scores[i])]
