"""Trainable blocks of the feature-masking losses: MGD's generation block, an SE block, FGD's GcBlock.

They live inside the losses (as FGD's released ``FeatureLoss`` holds its GcBlocks) because their masks come
from the *teacher* feature, which an mmrazor connector (one input) never sees.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def generation_block(channels: int) -> nn.Sequential:
    """MGD's generation block ``G``: conv3x3 -> ReLU -> conv3x3, ``(N, C, H, W) -> (N, C, H, W)``."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, 3, padding=1))


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel recalibration (Hu et al., CVPR 2018): ``x * sigmoid(W2 relu(W1 gap(x)))``.

    AMD/DMKD's "simple yet efficient SE block" for channel-adaptive cues (no public code: reduction chosen
    by kdlab, default 16, at least 4 hidden channels). ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3), keepdim=True))


class GcBlock(nn.Module):
    """FGD's global-relation block (a GCNet context block): ``F + W2 relu(LN(W1 sum_hw softmax(conv(F)) F))``.

    As in FGD's released code: the context conv is kaiming-initialised, the last conv of the transform is
    zero-initialised (the block starts as the identity). ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1), nn.LayerNorm([channels // 2, 1, 1]),
            nn.ReLU(inplace=True), nn.Conv2d(channels // 2, channels, kernel_size=1))
        nn.init.kaiming_normal_(self.conv_mask.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add_conv[-1].weight)
        nn.init.zeros_(self.channel_add_conv[-1].bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = torch.softmax(self.conv_mask(x).reshape(n, 1, h * w), dim=2)      # (N, 1, HW)
        return torch.bmm(x.reshape(n, c, h * w), weights.transpose(1, 2)).reshape(n, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.channel_add_conv(self.context(x))
