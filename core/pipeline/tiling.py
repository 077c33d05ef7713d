"""Tile layout and fusion weights of progressive latent fusion (reference §5).

A tile is a list of latent-frame indices: the shared reference frame 0 followed by consecutive real
frames. Pure index arithmetic plus one small tensor; imports nothing but torch.
"""

import torch


def tile_indices(num_frames: int, tile_size: int, tile_overlap: int) -> list[list[int]]:
    """The frames of each tile, in the original's order (reference §5).

    Regular tiles start every ``tile_size - tile_overlap`` frames and hold frame 0 plus the next
    ``tile_size - 1`` frames; if the last one stops short of the final frame, a right-aligned tile
    is appended. Departure: when ``num_frames <= tile_size`` we return one tile of all frames (the
    tile shrinks to the video), where the original builds an empty list and crashes (issues #74, #111).

    Args:
        num_frames: latent frames N' including the reference frame 0 (at least 2).
        tile_size: frames per tile T, frame 0 included (at least 2).
        tile_overlap: O in [1, T): consecutive regular tiles share O - 1 real frames.

    Raises:
        ValueError: naming the argument out of range.
    """
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2 (reference + one frame), got {num_frames}")
    if tile_size < 2:
        raise ValueError(f"tile_size must be at least 2, got {tile_size}")
    if not 1 <= tile_overlap < tile_size:
        # With overlap 0 the original's stride T skips frame i+T of every tile: that frame gets no
        # prediction at all and its fused weight sum is 0 (a division by zero), so we refuse it.
        raise ValueError(f"tile_overlap must be in [1, tile_size={tile_size}), got {tile_overlap}")
    if num_frames <= tile_size:
        return [list(range(num_frames))]
    stride = tile_size - tile_overlap
    tiles = [[0, *range(start + 1, start + tile_size)] for start in range(0, num_frames - tile_size + 1, stride)]
    if tiles[-1][-1] < num_frames - 1:
        tiles.append([0, *range(num_frames - tile_size + 1, num_frames)])
    return tiles


def fusion_weights(tile_size: int, *, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """Triangular weight per tile position p: min(u, 2 - u) with u = (p + 0.5) * 2 / T, shape (T,).

    Each operation rounds in ``dtype`` in the original's order, so in float16 this reproduces the
    original's slightly asymmetric values (reference §5: it computed them in fp16).
    """
    positions = torch.arange(tile_size, dtype=dtype, device=device) + 0.5
    rising = positions * 2.0 / tile_size
    return torch.minimum(rising, 2 - rising)
