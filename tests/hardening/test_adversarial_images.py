"""Hostile images and image URLs: bombs, truncation, mislabelling, exotic modes, malformed
data URLs, and URLs that point inside the network (SSRF), with URL fetching off and on.

Every refused image ends as an ``ImageError`` (an ``error`` decision, fail-closed) before
anything is sent to the model; every accepted one reaches the model as a valid PNG/JPEG/
WebP data URL and gets the model's verdict. Nothing becomes "safe" by accident.
"""

from __future__ import annotations

import base64
import io
import logging

import pytest

from proguard_rails import ImageError, Policy, ProGuard
from proguard_rails.inputs import decode_image_bytes, load_image
from proguard_rails.testing_server import FakeChatServer, request_image_count, tagged_answer

from .conftest import animated_gif, image_bytes, png16, png_header_bomb, png_real_bomb, png_text_bomb


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_message(url: str, text: str = "req-1 what is in this picture?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


class Recorder:
    """Answer function that keeps every request body (to inspect what reached the model)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, body):
        self.bodies.append(body)
        return tagged_answer(body)

    def image_urls(self) -> list[str]:
        return [p["image_url"]["url"] for b in self.bodies for m in b["messages"]
                if isinstance(m.get("content"), list) for p in m["content"] if p.get("type") == "image_url"]


@pytest.fixture
def recorded():
    rec = Recorder()
    with FakeChatServer(answer=rec) as srv:
        srv.recorder = rec
        yield srv


def assert_refused(decision, error_type: str = "image") -> None:
    assert decision.status == "error", decision.reason
    assert not decision.allowed and decision.fail_mode_applied == "closed"
    assert decision.error_type == error_type, decision.error_type
    assert decision.verdict is None


# ------------------------------------------------------------------ refused images
@pytest.fixture(scope="module")
def bombs():
    return {
        "png_header_100k_x_100k": png_header_bomb(),
        "png_decodable_7000_x_7000": png_real_bomb(7_000),
        "png_ztxt_16mb": png_text_bomb(),
        "jpeg_header_60k_x_60k": _jpeg_with_size(60_000, 60_000),
    }


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose SOF header is rewritten to claim ``width x height``."""
    data = bytearray(image_bytes((8, 8), fmt="JPEG"))
    i = data.index(b"\xff\xc0")  # baseline SOF0: marker, length(2), precision(1), height(2), width(2)
    data[i + 5:i + 7] = height.to_bytes(2, "big")
    data[i + 7:i + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_bombs_are_refused_before_any_pixel_is_decoded(bombs, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self, *a, **k):  # the size check must come first
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for name, data in bombs.items():
        if name == "png_ztxt_16mb":
            continue  # its bomb is in a text chunk, read while decoding (checked below)
        with pytest.raises(ImageError, match="pixels|decompression bomb") as info:
            decode_image_bytes(data)
        assert "refused" in str(info.value), name


def test_text_chunk_bomb_is_an_image_error(bombs):
    with pytest.raises(ImageError):
        load_image(bombs["png_ztxt_16mb"])


async def test_bombs_end_as_fail_closed_decisions_and_reach_no_model(bombs, recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10)
    for name, data in bombs.items():
        for decision in (
            await guard.acheck("req-3 look", images=[data]),
            await guard.acheck(image_message(data_url(data))),
            await guard.acheck(image_message(data_url(data, "image/jpeg"))),
        ):
            assert_refused(decision)
            assert "image" in decision.reason, name
    assert recorded.stats.chat_requests == 0
    await guard.aclose()


def test_pixel_and_byte_limits_are_settings():
    small = ProGuard(base_url="http://127.0.0.1:9/v1", max_image_pixels=100, max_image_bytes=10_000)
    with pytest.raises(ImageError, match="max_image_pixels"):
        small.request("x", images=[image_bytes((20, 20))])
    with pytest.raises(ImageError, match="max_image_bytes"):
        small.request("x", images=[b"\x89PNG" + b"\x00" * 20_000])


@pytest.mark.parametrize("name,data", [
    ("truncated_png", image_bytes((64, 64))[:120]),
    ("truncated_jpeg", image_bytes((64, 64), fmt="JPEG")[:300]),
    ("png_signature_only", b"\x89PNG\r\n\x1a\n"),
    ("random_bytes", bytes(range(256)) * 8),
    ("html_called_png", b"<html><script>alert(1)</script></html>"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>'),
    ("empty", b""),
])
async def test_corrupt_images_are_image_errors(name, data, recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10)
    with pytest.raises(ImageError):
        load_image(data)
    assert_refused(await guard.acheck("req-2 describe", images=[data]))
    if data:
        assert_refused(await guard.acheck(image_message(data_url(data))))
    assert recorded.stats.chat_requests == 0
    await guard.aclose()


@pytest.mark.parametrize("url", [
    "data:image/png;base64",                                  # no comma
    "data:image/png,iVBORw0KGgo=",                            # not base64-flagged
    "data:image/png;base64,!!!!not-base64!!!!",
    "data:image/png;base64,",                                 # empty payload
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:application/octet-stream;base64,iVBORw0KGgo=",
    "data:image/png;base64," + base64.b64encode(b"GIF89a" + b"\x00" * 30).decode(),
    "data:image/png;charset=utf-8;base64,%%%%",
    "data:;base64,AAAA",
])
async def test_malformed_data_urls(url, recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10)
    with pytest.raises(ImageError):
        load_image(url, allow_paths=False)
    assert_refused(await guard.acheck(image_message(url)))
    assert_refused(await guard.acheck([{"role": "user", "content": [{"type": "image", "url": url}]}]))
    assert recorded.stats.chat_requests == 0
    await guard.aclose()


def test_too_many_images_is_input_too_large():
    guard = ProGuard(base_url="http://127.0.0.1:9/v1", max_images=2)
    d = guard.check("req-1", images=[image_bytes()] * 3)
    assert_refused(d, "input_too_large")


# ------------------------------------------------------------------ accepted images: a correct verdict
def _decoded(url: str):
    from PIL import Image

    head, _, payload = url.partition(",")
    return head, Image.open(io.BytesIO(base64.b64decode(payload)))


async def test_mislabelled_animated_cmyk_and_16bit_images_reach_the_model_as_valid_images(recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10)
    png = image_bytes((16, 12))
    cases = {
        # name: (input as given, expected mime sent, expected first pixel)
        "png_called_jpeg": (image_message(data_url(png, "image/jpeg"), "req-4 a"), "image/png", (200, 30, 30)),
        "animated_gif": (image_message(data_url(animated_gif(3), "image/gif"), "req-5 b"), "image/png", None),
        "cmyk_jpeg": (image_message(data_url(image_bytes(mode="CMYK", fmt="JPEG"), "image/jpeg"), "req-6 c"),
                      "image/png", None),
        "png_16bit": (image_message(data_url(png16(32768)), "req-7 d"), "image/png", (128, 128, 128)),
    }
    for n, (name, (item, mime, pixel)) in enumerate(cases.items()):
        decision = await guard.acheck(item)
        assert decision.status != "error", (name, decision.reason)
        assert decision.verdict.reasoning == f"answer for req-{4 + n}", name  # the model's own answer
        url = recorded.recorder.image_urls()[-1]
        head, img = _decoded(url)
        assert head == f"data:{mime};base64", name
        assert img.mode in ("RGB", "RGBA", "L") and getattr(img, "n_frames", 1) == 1, name
        if pixel is not None:
            assert img.convert("RGB").getpixel((0, 0)) == pixel, name
    cmyk = load_image(image_bytes(mode="CMYK", fmt="JPEG", color=(0, 255, 255, 0)))
    assert cmyk.to_pil().getpixel((0, 0))[0] > 200  # cyan-free + full magenta/yellow -> red, not inverted
    assert recorded.stats.chat_requests == 4
    await guard.aclose()


async def test_lone_image_uses_the_image_protocol(recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10)
    d = await guard.acheck([{"role": "user", "content": [{"type": "image_url",
                                                         "image_url": {"url": data_url(image_bytes())}}]}])
    assert d.verdict is not None and d.verdict.modality.value == "image"
    body = recorded.recorder.bodies[-1]
    assert request_image_count(body) == 1
    await guard.aclose()


# ------------------------------------------------------------------ image URLs: off by default, SSRF-safe when on
REMOTE_URLS = [
    "http://example.com/cat.png",
    "https://example.com/cat.png",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.7/internal.png",
    "http://127.0.0.1:1/admin.png",
    "http://localhost/x.png",
]
LOCAL_URLS = ["file:///etc/passwd", "file://localhost/etc/hosts", "ftp://example.com/a.png",
              "gopher://127.0.0.1:25/_HELO", "/etc/passwd", "../../etc/passwd", "//example.com/a.png",
              "jar:file:///tmp/a.zip!/x.png"]


@pytest.mark.parametrize("url", REMOTE_URLS + LOCAL_URLS)
async def test_urls_are_refused_with_fetching_off(url, recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10)
    with pytest.raises(ImageError):
        load_image(url, allow_paths=False)
    assert_refused(await guard.acheck(image_message(url)))
    assert_refused(await guard.acheck([{"role": "user", "content": [{"type": "image", "url": url}]}]))
    assert recorded.stats.chat_requests == 0 and recorded.stats.file_requests == 0
    await guard.aclose()


@pytest.mark.parametrize("url", [u for u in LOCAL_URLS if "://" in u[:12]])
def test_non_http_schemes_are_refused_even_with_fetching_on(url):
    guard = ProGuard(base_url="http://127.0.0.1:9/v1", allow_image_urls=True, allow_private_image_urls=True)
    with pytest.raises(ImageError, match="scheme|not allowed"):
        guard.request(image_message(url))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.1", "2130706433", "0.0.0.0",
                                  "169.254.169.254", "10.1.2.3", "192.168.0.1", "172.16.5.4", "[::ffff:127.0.0.1]",
                                  "[fd00::1]", "user:pw@127.0.0.1"])
def test_internal_addresses_are_refused_with_fetching_on(host):
    guard = ProGuard(base_url="http://127.0.0.1:9/v1", allow_image_urls=True)
    with pytest.raises(ImageError, match="loopback/private/internal"):
        guard.request(image_message(f"http://{host}/latest/meta-data/x.png"))


async def test_loopback_fetch_needs_allow_private_image_urls(recorded):
    png = image_bytes((20, 10), color=(10, 20, 30))
    url = recorded.add_file("/images/cat.png", png, "image/png")
    # fetching on, private off: refused before any connection is made
    guard = ProGuard(base_url=recorded.base_url, timeout=10, allow_image_urls=True)
    assert_refused(await guard.acheck(image_message(url)))
    assert recorded.stats.file_requests == 0
    await guard.aclose()
    # fetching on, private on: fetched, validated, sent as a data URL, judged
    guard = ProGuard(base_url=recorded.base_url, timeout=10, allow_image_urls=True, allow_private_image_urls=True)
    decision = await guard.acheck(image_message(url, "req-9 is this ok?"))
    assert decision.status != "error", decision.reason
    assert decision.verdict.reasoning == "answer for req-9"
    assert recorded.stats.file_requests == 1
    head, img = _decoded(recorded.recorder.image_urls()[-1])
    assert head == "data:image/png;base64" and img.size == (20, 10)
    await guard.aclose()


async def test_fetched_urls_are_validated_like_any_image(recorded):
    guard = ProGuard(base_url=recorded.base_url, timeout=10, allow_image_urls=True, allow_private_image_urls=True,
                     max_image_bytes=5_000)
    served = {
        "html.png": (b"<html>not an image</html>", "image/png", 200),
        "bomb.png": (png_header_bomb(), "image/png", 200),
        "big.png": (image_bytes((200, 200), mode="RGB", fmt="BMP"), "image/png", 200),  # ~120 kB > 5 kB
        "missing.png": (b"not found", "text/plain", 404),
    }
    for name, (data, ctype, status) in served.items():
        url = recorded.add_file(f"/x/{name}", data, ctype, status=status)
        assert_refused(await guard.acheck(image_message(url)))
    # a redirect to the metadata service is not followed
    url = recorded.add_redirect("/x/redirect.png", "http://169.254.169.254/latest/meta-data/")
    d = await guard.acheck(image_message(url))
    assert_refused(d)
    assert "redirect" in d.reason
    assert recorded.stats.chat_requests == 0
    await guard.aclose()


async def test_image_errors_block_even_fail_open_unless_configured_and_are_logged(recorded, caplog):
    # fail-open must not let content through unjudged just because a broken image was attached
    guard = ProGuard(base_url=recorded.base_url, timeout=10, fail_mode="open")
    d = await guard.acheck("req-1", images=[png_header_bomb()])
    assert d.status == "error" and d.blocked and d.fail_mode_applied == "closed"
    await guard.aclose()
    guard = ProGuard(base_url=recorded.base_url, timeout=10, fail_mode="open",
                     policy=Policy(fail_mode="open", input_errors="fail_mode"))
    with caplog.at_level(logging.WARNING, logger="proguard_rails"):
        d = await guard.acheck("req-1", images=[png_header_bomb()])
    assert d.status == "error" and d.allowed and d.fail_mode_applied == "open"
    assert any("fail_mode is open" in r.getMessage() for r in caplog.records)
    await guard.aclose()
