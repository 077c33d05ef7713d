"""Device memory a batched model call may plan on; shared by tile batching (UNet) and chunk batching (VAE)."""

import torch

# Share of the available memory a batched call plans to fill: the rest absorbs allocator
# fragmentation, cuDNN workspaces and the error of the activation estimates.
MEMORY_HEADROOM = 0.6


def available_memory_bytes(device: torch.device) -> int:
    """Bytes this process can still allocate on a CUDA ``device``: free on the card, plus what torch's
    caching allocator holds unused (an earlier stage's or job's activations, reusable by the next call).
    """
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return free_bytes + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def items_that_fit(available_bytes: int, bytes_per_item: float, most: int) -> int:
    """How many items of ``bytes_per_item`` fit the headroom share of ``available_bytes``: 1 to ``most``."""
    return max(1, min(most, int(available_bytes * MEMORY_HEADROOM // bytes_per_item)))
