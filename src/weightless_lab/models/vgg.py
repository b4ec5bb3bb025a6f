"""A VGG-style network for 28x28 gray images (Fashion-MNIST), built for the paper's VGG-16
experiment at a scale two cores can train (issue 26).

:class:`VGGMini`: a small convolutional feature stack -- ``conv1`` 32@3x3, 2x2 max-pool,
``conv2`` 64@3x3, 2x2 max-pool, ``conv3`` 128@3x3 (all padded, ReLU), 128x7x7 = 6,272 features
-- and VGG's wide fully connected head: ``fc1`` 6272->1024 ("FC-0", 6,422,528 weights), ReLU,
dropout 0.5, ``fc2`` 1024->1024 ("FC-1", 1,048,576 weights), ReLU, dropout 0.5, ``fc3``
1024->10. As in VGG-16, FC-0 reads the learned features of the conv stack and holds most of the
weights (86% here, 74% in VGG-16).

Takes flattened images (n, 784) or (n, 1, 28, 28); returns logits (n, 10).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["VGGMini", "VGGHead", "FEATURES"]

#: Width of the conv stack's output (the input of FC-0).
FEATURES = 128 * 7 * 7


class VGGHead(nn.Module):
    """VGG's fully connected head: ``fc1`` (FC-0), ``fc2`` (FC-1), ``fc3``, ReLU and dropout 0.5."""

    def __init__(self, features: int = FEATURES, hidden: int = 1024, classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (n, classes) for features (n, ``features``)."""
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        x = self.drop(F.relu(self.fc2(x)))
        return self.fc3(x)


class VGGMini(VGGHead):
    """Three 3x3 conv layers (``channels``, default 32, 64, 128; two 2x2 max-pools) and
    :class:`VGGHead` (``hidden`` units, default 1024); smaller widths are for tests."""

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), hidden: int = 1024) -> None:
        super().__init__(channels[2] * 7 * 7, hidden)
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.conv3 = nn.Conv2d(channels[1], channels[2], 3, padding=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack's output, flattened: (n, 6272) for images (n, 784) or (n, 1, 28, 28)."""
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.conv3(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (n, 10) for images (n, 784) or (n, 1, 28, 28)."""
        return super().forward(self.features(x))
