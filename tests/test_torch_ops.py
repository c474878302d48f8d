"""PyTorch's fast paths (xpnet/ops/_torch.py) against the generic results they replace."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet.ops import Ops, TorchOps

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_grad_is_one_threshold_pass_with_the_generic_values(dtype):
    """autograd's threshold_backward: the generic ``dy * (y > 0)`` on finite values, and 0
    where ``y <= 0`` even for an infinite ``dy`` (the product gave NaN there)."""
    gen = torch.Generator().manual_seed(0)
    y = torch.relu(torch.randn(64, 33, generator=gen, dtype=dtype))
    dy = torch.randn(64, 33, generator=gen, dtype=dtype)
    xp = xn.get_backend("torch").xp
    fast, generic = TorchOps().relu_grad(xp, dy, y), Ops().relu_grad(xp, dy, y)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast.numpy(), generic.numpy())
    edge = TorchOps().relu_grad(xp, torch.tensor([np.inf, -np.inf, 2.0], dtype=dtype),
                                torch.tensor([0.0, -1.0, 3.0], dtype=dtype))
    assert edge.tolist() == [0.0, 0.0, 2.0]
