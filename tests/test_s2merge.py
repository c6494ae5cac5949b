"""Dynamic-S2 area-resize matrices against torch's own 'area' interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nvila_edge.runtime.s2merge import area_matrix


@pytest.mark.parametrize("in_size,out_size", [(32, 96), (64, 96), (64, 128), (32, 32), (64, 160), (96, 64)])
def test_area_matrix_equals_torch_area_1d(in_size, out_size):
    x = torch.randn(1, 5, in_size, generator=torch.Generator().manual_seed(in_size + out_size))
    expected = F.interpolate(x, size=out_size, mode="area")[0].numpy()  # [5, out]
    matrix = area_matrix(in_size, out_size)
    assert matrix.dtype == np.float32 and matrix.shape == (out_size, in_size)
    np.testing.assert_allclose(x[0].numpy() @ matrix.T, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)


def test_area_matrix_64_to_96_mixes_pairs():
    # Output rows: r0, mean(r0, r1), r1, r2, mean(r2, r3), r3, ...
    matrix = area_matrix(64, 96)
    np.testing.assert_array_equal(matrix[0, :2], [1.0, 0.0])
    np.testing.assert_array_equal(matrix[1, :2], [0.5, 0.5])
    np.testing.assert_array_equal(matrix[2, :3], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(matrix[3, 2:4], [1.0, 0.0])
    np.testing.assert_array_equal(matrix[4, 2:4], [0.5, 0.5])


def test_area_matrix_integer_upscale_replicates():
    np.testing.assert_array_equal(area_matrix(32, 96), np.repeat(np.eye(32, dtype=np.float32), 3, axis=0))


@pytest.mark.parametrize("in_hw,out_hw", [((32, 32), (96, 128)), ((64, 64), (96, 128)), ((64, 64), (64, 160))])
def test_two_matmuls_equal_torch_area_2d(in_hw, out_hw):
    x = torch.randn(1, 7, *in_hw, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, size=out_hw, mode="area")[0].numpy()
    rows, cols = area_matrix(in_hw[0], out_hw[0]), area_matrix(in_hw[1], out_hw[1])
    out = rows @ x[0].numpy() @ cols.T  # [7, out_h, out_w]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_area_matrix_rejects_empty_sizes():
    with pytest.raises(ValueError):
        area_matrix(0, 4)
