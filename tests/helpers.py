"""Small in-memory stand-ins shared by the tests."""

import numpy as np


class InMemorySource:
    """A source with the ArraySource batch interface over numpy arrays."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x.astype(np.float32), y.astype(np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices):
        return self.x[indices], self.y[indices]


def smooth_pairs(num: int, resolution: int, seed: int = 0) -> InMemorySource:
    """Random band-limited u0 and a smooth nonlinear target: enough to train on."""
    rng = np.random.default_rng(seed)
    grid = np.arange(resolution) / resolution
    k = np.arange(1, 6)
    coeffs = rng.normal(size=(num, 5, 2)) / k[None, :, None] ** 2
    u0 = (coeffs[..., 0] @ np.cos(2 * np.pi * np.outer(k, grid))
          + coeffs[..., 1] @ np.sin(2 * np.pi * np.outer(k, grid)))
    u1 = np.tanh(np.roll(u0, resolution // 8, axis=1)) + 0.1
    return InMemorySource(u0, u1)
