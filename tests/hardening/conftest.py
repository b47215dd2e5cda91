"""Fixtures for the hardening suite: a fake OpenAI-compatible endpoint on loopback and
image builders (every image is made in memory)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from proguard_rails.testing_server import FakeChatServer


@pytest.fixture
def server():
    """A fresh fake endpoint answering with ``tagged_answer`` (stopped at the end)."""
    srv = FakeChatServer().start()
    try:
        yield srv
    finally:
        srv.stop()


# ------------------------------------------------------------------ images
def image_bytes(size=(16, 12), mode="RGB", fmt="PNG", color=None, **save) -> bytes:
    from PIL import Image

    if color is None:
        color = {"RGB": (200, 30, 30), "RGBA": (200, 30, 30, 255), "CMYK": (0, 200, 200, 0)}.get(mode, 128)
    img = Image.new(mode, size, color)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG whose header claims ``width x height`` (10^10 pixels by default)
    with a tiny compressed body: decoding it would need ~30 GB."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_real_bomb(side: int = 8_000) -> bytes:
    """A genuinely decodable all-black PNG of ``side x side`` pixels, tiny on disk (zlib of
    zeros), over the default pixel limit: the classic decompression bomb."""
    row = b"\x00" + b"\x00" * side  # filter byte + one grey byte per pixel
    comp = zlib.compressobj(1)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def png_text_bomb() -> bytes:
    """A small PNG carrying a zTXt chunk that inflates to 16 MB of text."""
    base = image_bytes((4, 4))
    comp = zlib.compressobj(9)
    payload = comp.compress(b"A" * (16 * 1024 * 1024)) + comp.flush()
    ztxt = _png_chunk(b"zTXt", b"Comment\x00\x00" + payload)
    return base[:-12] + ztxt + base[-12:]  # before IEND


def animated_gif(frames: int = 3) -> bytes:
    from PIL import Image

    imgs = [Image.new("P", (10, 10), i * 40) for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=50, loop=0)
    return buf.getvalue()


def png16(value: int = 32768, size=(8, 8)) -> bytes:
    from PIL import Image

    img = Image.new("I;16", size, value)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
