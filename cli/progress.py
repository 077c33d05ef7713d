"""A terminal progress bar for the denoising steps (silent when stderr is not a terminal)."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield an ``on_step(step, total)`` callback that advances a tqdm bar."""
    with tqdm(total=total, desc=description, unit="step", disable=not sys.stderr.isatty()) as bar:

        def on_step(step: int, total_steps: int) -> None:
            bar.total = total_steps
            bar.update(step - bar.n)

        yield on_step
