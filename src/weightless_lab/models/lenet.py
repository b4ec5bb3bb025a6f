"""The paper's MNIST networks in PyTorch.

* :class:`LeNet300` -- LeNet-300-100: ``fc1`` 784->300 (paper "FC-0"), ``fc2`` 300->100
  ("FC-1"), ``fc3`` 100->10, ReLU between layers.
* :class:`LeNet5` -- the Caffe LeNet5 used by the DNS models: ``conv1`` 20@5x5, 2x2 max-pool,
  ``conv2`` 50@5x5 ("CNN-1", 25,000 weights), 2x2 max-pool, ``fc1`` 800->500 ("FC-0", 400,000
  weights), ReLU, ``fc2`` 500->10. We add a ReLU after each pooling stage (Caffe has none
  there); the weight shapes are exactly Caffe's.

Both take flattened images of shape (n, 784) (or (n, 1, 28, 28)) and return logits (n, 10).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LeNet300", "LeNet5"]


class LeNet300(nn.Module):
    """LeNet-300-100 (784-300-100-10 fully connected, ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (n, 10) for images (n, 784) or (n, 1, 28, 28)."""
        x = x.reshape(x.shape[0], 784)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """Caffe LeNet5: conv 20@5x5, pool, conv 50@5x5, pool, fc 800->500, fc 500->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (n, 10) for images (n, 784) or (n, 1, 28, 28)."""
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)

