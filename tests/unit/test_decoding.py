"""How many decode chunks share one VAE call: sized to memory on CUDA, one on CPU."""

import torch
from diffusers.models.autoencoders.autoencoder_kl_temporal_decoder import AutoencoderKLTemporalDecoder
from hypothesis import given
from hypothesis import strategies as st

from core.models.tiny import VAE_CONFIG
from core.pipeline.decoding import auto_chunks_per_call, chunks_per_call_for_memory

GIB = 2**30
DEFAULT_FRAME = (576, 1024)  # the default job: resolution 576, 9:16
NUM_WHOLE_CHUNKS = 66  # 533 frames (a 532-frame video and its reference frame) in chunks of 8


def test_chunks_per_call_fill_an_80_gb_card_at_the_default_size() -> None:
    # The SVD-xt decoder's estimate: about 10.5 GiB per 16-bit 576x1024 chunk of 8, 60 % of memory planned.
    assert chunks_per_call_for_memory(75 * GIB, NUM_WHOLE_CHUNKS, 8, DEFAULT_FRAME, dtype_bytes=2) == 4
    assert chunks_per_call_for_memory(75 * GIB, NUM_WHOLE_CHUNKS, 8, DEFAULT_FRAME, dtype_bytes=4) == 2


def test_chunks_per_call_is_one_when_one_chunk_does_not_fit() -> None:
    assert chunks_per_call_for_memory(8 * GIB, NUM_WHOLE_CHUNKS, 8, DEFAULT_FRAME, dtype_bytes=2) == 1
    assert chunks_per_call_for_memory(0, NUM_WHOLE_CHUNKS, 8, DEFAULT_FRAME, dtype_bytes=2) == 1


def test_chunks_per_call_is_at_most_the_whole_chunks() -> None:
    assert chunks_per_call_for_memory(1000 * GIB, 3, 8, DEFAULT_FRAME, dtype_bytes=2) == 3
    assert chunks_per_call_for_memory(1000 * GIB, 0, 8, DEFAULT_FRAME, dtype_bytes=2) == 1  # less than a chunk


@given(
    available_bytes=st.integers(0, 200 * GIB),
    num_whole_chunks=st.integers(0, 100),
    decode_chunk_size=st.integers(1, 25),
    height=st.integers(16, 1024),
    width=st.integers(16, 2048),
    dtype_bytes=st.sampled_from([2, 4]),
)
def test_chunks_per_call_stay_in_range_and_scale_with_pixels_and_dtype(
    available_bytes: int, num_whole_chunks: int, decode_chunk_size: int, height: int, width: int, dtype_bytes: int
) -> None:
    def chunks(available: int, frame_size: tuple[int, int], dtype: int) -> int:
        return chunks_per_call_for_memory(available, num_whole_chunks, decode_chunk_size, frame_size, dtype)

    result = chunks(available_bytes, (height, width), dtype_bytes)
    assert 1 <= result <= max(1, num_whole_chunks)
    assert chunks(2 * available_bytes, (height, width), dtype_bytes) >= result
    # Twice the bytes per element, or four times the pixels, take twice or four times the memory.
    assert chunks(2 * available_bytes, (height, width), 2 * dtype_bytes) == result
    assert chunks(4 * available_bytes, (2 * height, 2 * width), dtype_bytes) == result


def test_auto_chunks_per_call_is_one_on_cpu() -> None:
    vae = AutoencoderKLTemporalDecoder(**VAE_CONFIG)
    assert vae.device == torch.device("cpu")
    assert auto_chunks_per_call(vae, num_frames=533, latent_size=(72, 128), decode_chunk_size=8) == 1
