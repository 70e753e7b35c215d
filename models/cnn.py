"""A small convolutional image encoder: the "CNN features" half of image captioning.

    conv1: h1 = ReLU(Conv2d(x))            (B, C, H, W)   -> (B, c1, H, W)     3x3, padding 1
    conv2: h2 = ReLU(Conv2d(h1))           (B, c1, H, W)  -> (B, c2, H, W)     3x3, padding 1
    pool:  A  = MaxPool2d(2)(h2)           (B, c2, H, W)  -> (B, c2, H/2, W/2)

Each filter learns a local feature; pooling halves the resolution. The pooled map is the set of
annotation vectors `a_i` (one per grid cell i, `i = r * W/2 + c`) that an attention decoder scores at
every step (Show, Attend and Tell): `features(x)` returns them as (B, h*w, c2); their mean over the
grid is the image's "feature vector" that initialises the decoder state.
"""
from __future__ import annotations

from .. import nn
from ..tensor import Tensor


class CNNEncoder(nn.Module):
    """Conv2d-ReLU-Conv2d-ReLU-MaxPool2d feature extractor: (B, in_channels, H, W) -> (B, out_channels, H/2, W/2)."""

    def __init__(self, in_channels: int = 1, channels: int = 16, out_channels: int = 32, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"CNNEncoder: kernel_size must be odd (same-size padding), got {kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv2d(channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CNNEncoder: expected input (B, {self.in_channels}, H, W), got shape {x.shape}")
        if x.shape[2] < 2 or x.shape[3] < 2:
            raise ValueError(f"CNNEncoder: image {x.shape[2]}x{x.shape[3]} is too small to pool by 2")
        return self.pool(self.conv2(self.conv1(x).relu()).relu())

    def features(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Annotation vectors (B, h*w, out_channels), row-major over the grid, and the grid size (h, w)."""
        fmap = self(x)
        B, C, h, w = fmap.shape
        return fmap.reshape(B, C, h * w).transpose(1, 2), (h, w)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"
