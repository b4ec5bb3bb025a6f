"""Training with two torch threads gives the same bits on every run (the default is up to 2)."""

import torch

from weightless.simplify.cluster import _quantized_param_module


def test_codebook_gradient_is_the_same_on_every_run() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gen = torch.Generator().manual_seed(0)
        idx = torch.randint(-1, 9, (500, 800), generator=gen)
        g = torch.randn(500, 800, generator=gen)
        grads = set()
        for _ in range(8):
            q = _quantized_param_module()(torch.arange(9, dtype=torch.float32), idx)
            (q(None) * g).sum().backward()
            grads.add(q.codebook.grad.numpy().tobytes())
        assert len(grads) == 1
        expected = torch.zeros(9, dtype=torch.float64).index_add_(0, idx.clamp(min=0).reshape(-1),
                                                                    ((idx >= 0) * g).double().reshape(-1))
        assert torch.allclose(q.codebook.grad.double(), expected, atol=1e-2)
    finally:
        torch.set_num_threads(before)
