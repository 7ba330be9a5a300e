"""Shared tolerances and a comparison that names the worst element."""

import torch

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def assert_close(actual, expected, what, **tol):
    """assert_close with the worst element named in the message."""
    try:
        torch.testing.assert_close(actual, expected, **tol)
    except AssertionError as e:
        diff = (actual - expected).abs()
        idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        raise AssertionError(
            f"{what}: worst element at {idx}: got {actual[idx].item()!r}, expected {expected[idx].item()!r}\n{e}"
        ) from None
