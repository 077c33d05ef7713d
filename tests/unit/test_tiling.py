"""Tile layout and fusion weights against the reference's tables (reference §5)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from core.pipeline.tiling import fusion_weights, tile_indices


@pytest.mark.parametrize(
    ("num_frames", "spans"),
    [
        (73, [(1, 71), (2, 72)]),
        (100, [(1, 71), (29, 99)]),
        (139, [(1, 71), (67, 137), (68, 138)]),
        (
            531,
            [(1, 71), (67, 137), (133, 203), (199, 269), (265, 335), (331, 401), (397, 467), (460, 530)],
        ),
    ],
)
def test_tile_indices_match_reference_examples(num_frames: int, spans: list[tuple[int, int]]) -> None:
    tiles = tile_indices(num_frames, 72, 6)
    assert [(tile[1], tile[-1]) for tile in tiles] == spans
    for tile, (first, last) in zip(tiles, spans, strict=True):
        assert tile == [0, *range(first, last + 1)]


def test_tile_indices_appends_right_aligned_last_tile() -> None:
    # Stride 5 fits one regular tile (frames 1..7); the appended tile takes the last 7 frames.
    assert tile_indices(12, 8, 3) == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 5, 6, 7, 8, 9, 10, 11]]


def test_tile_indices_single_tile_when_frames_equal_tile() -> None:
    assert tile_indices(72, 72, 6) == [list(range(72))]


def test_tile_indices_shrinks_tile_for_short_video() -> None:
    # The original crashes here (issues #74, #111); we denoise the whole short video as one tile.
    assert tile_indices(10, 72, 6) == [list(range(10))]


@pytest.mark.parametrize(
    ("num_frames", "tile_size", "tile_overlap", "name"),
    [(1, 72, 6, "num_frames"), (10, 1, 0, "tile_size"), (100, 8, 0, "tile_overlap"), (100, 8, 8, "tile_overlap")],
)
def test_tile_indices_rejects_out_of_range(num_frames: int, tile_size: int, tile_overlap: int, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        tile_indices(num_frames, tile_size, tile_overlap)


@given(
    num_frames=st.integers(2, 400),
    tile_size=st.integers(2, 80),
    data=st.data(),
)
def test_tile_indices_cover_every_frame_with_full_tiles(num_frames: int, tile_size: int, data: st.DataObject) -> None:
    tile_overlap = data.draw(st.integers(1, tile_size - 1))
    tiles = tile_indices(num_frames, tile_size, tile_overlap)
    size = min(tile_size, num_frames)
    assert all(tile[0] == 0 and len(tile) == size for tile in tiles)
    assert all(tile[1:] == list(range(tile[1], tile[1] + size - 1)) for tile in tiles)
    assert set().union(*map(set, tiles)) == set(range(num_frames))
    assert tiles[-1][-1] == num_frames - 1


def test_fusion_weights_exact_for_tile_16() -> None:
    expected = torch.tensor([0.0625, 0.1875, 0.3125, 0.4375, 0.5625, 0.6875, 0.8125, 0.9375])
    weights = fusion_weights(16, dtype=torch.float32)
    assert torch.equal(weights, torch.cat([expected, expected.flip(0)]))


def test_fusion_weights_tile_72_float16_match_reference() -> None:
    weights = fusion_weights(72, dtype=torch.float16)
    assert weights.dtype == torch.float16
    for positions, values in (
        ([0, 1, 2, 3], [0.013885, 0.041656, 0.069458, 0.097229]),
        ([34, 35, 36, 37], [0.958496, 0.986328, 0.986328, 0.958008]),
        ([68, 69, 70, 71], [0.097656, 0.069336, 0.041992, 0.013672]),
    ):
        assert weights[positions].float().tolist() == pytest.approx(values, abs=5e-7)


def test_fusion_weights_tile_72_float32_is_symmetric_triangle() -> None:
    weights = fusion_weights(72, dtype=torch.float32).double()
    positions = torch.arange(72, dtype=torch.float64)
    exact = torch.minimum((positions + 0.5) / 36, 2 - (positions + 0.5) / 36)
    assert torch.allclose(weights, exact, atol=1e-7)
    # float16 rounding is what makes the original's weights asymmetric; float32 stays close to the doc.
    assert torch.allclose(fusion_weights(72, dtype=torch.float16).double(), exact, atol=1e-3)
