"""Small builders shared by tests (images made in memory; nothing copied from datasets)."""

from __future__ import annotations

import io


def png_bytes(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG",
              mode: str = "RGB") -> bytes:
    from PIL import Image

    img = Image.new(mode, size, color if mode in ("RGB", "RGBA") else 128)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


class ManualClock:
    """A monotonic clock the test advances (``CircuitBreaker(clock=...)``): cooldowns are
    driven by the test's own steps, not by sleeps racing a busy machine."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
