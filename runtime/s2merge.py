"""Averaging matrices for Dynamic-S2's 'area' resize, so the merge is two matmuls instead of a pooling op.

Area interpolation is adaptive average pooling: output cell i averages input cells
floor(i * in / out) .. ceil((i + 1) * in / out) - 1. A 2-D map X [in_h, in_w] resizes as A_h @ X @ A_w^T,
which exports to any backend (adaptive pooling to non-divisible sizes does not).
"""

from __future__ import annotations

import numpy as np


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """float32 [out_size, in_size]: row i averages its input window (area / adaptive-average resize)."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"area_matrix sizes must be positive, got {in_size} -> {out_size}")
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        stop = -((-(i + 1) * in_size) // out_size)  # ceil in integers
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix
