import base64
import io
import struct
import zlib

import pytest

from proguard_rails import ImageError, InputError, InputTooLargeError, Modality, ProGuardSettings
from proguard_rails.inputs import build_request, load_image, normalize, truncate_text
from tests.helpers import png_bytes


def _bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims a huge image (decompression bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_string_and_pair():
    r = normalize("hello")
    assert r.user_text == "hello" and r.agent_text is None and r.modality == Modality.TEXT
    r = normalize(("q", "a"))
    assert (r.user_text, r.agent_text) == ("q", "a")
    r = normalize("q", "a")
    assert r.agent_text == "a" and r.has_response


def test_dict_inputs():
    assert normalize({"prompt": "p", "response": "r"}).agent_text == "r"
    assert normalize({"messages": [{"role": "user", "content": "u"}]}).user_text == "u"
    with pytest.raises(InputError):
        normalize({"unrelated": 1})


def test_messages_fold_history_and_response():
    msgs = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    r = normalize(msgs)
    assert r.agent_text == "second answer"
    assert r.user_text.endswith("second question")
    assert "first question" in r.user_text and "first answer" in r.user_text
    assert "[system instructions]\nYou are helpful." in r.user_text  # system messages are judged too...
    assert r.not_judged == ()
    skipped = normalize(msgs, settings=ProGuardSettings(system_messages="skip"))
    assert "You are helpful." not in skipped.user_text  # ...unless skipped, and then the request says so
    assert skipped.not_judged == ("message 0: system message (system_messages='skip')",)


def test_messages_with_image_parts():
    url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    msgs = [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]
    r = normalize(msgs)
    assert r.modality == Modality.TEXT_IMAGE and len(r.images) == 1
    only_image = normalize([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert only_image.modality == Modality.IMAGE
    # LangChain standard base64 block
    block = {"type": "image", "base64": base64.b64encode(png_bytes()).decode(), "mime_type": "image/png"}
    assert len(normalize([{"role": "user", "content": [block]}]).images) == 1


def test_duck_typed_message_objects():
    class Msg:
        def __init__(self, type_, content):
            self.type, self.content = type_, content

    r = normalize([Msg("human", "hi"), Msg("ai", "hello")])
    assert (r.user_text, r.agent_text) == ("hi", "hello")


def test_image_sources(tmp_path):
    data = png_bytes()
    path = tmp_path / "x.png"
    path.write_bytes(data)
    from PIL import Image

    for src in (data, path, str(path), base64.b64encode(data).decode(),
                "data:image/png;base64," + base64.b64encode(data).decode(), Image.open(io.BytesIO(data))):
        img = load_image(src)
        assert (img.width, img.height) == (32, 24)
        assert img.mime == "image/png"


def test_mislabelled_and_converted_images():
    jpeg_as_png = "data:image/png;base64," + base64.b64encode(png_bytes(fmt="JPEG")).decode()
    assert load_image(jpeg_as_png).mime == "image/jpeg"  # format read from the bytes
    cmyk = png_bytes(fmt="JPEG", mode="CMYK")
    img = load_image(cmyk)
    assert img.reencoded and img.mime == "image/png" and img.to_pil().mode == "RGB"


def test_corrupt_and_truncated_images_are_clear_errors():
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(b"definitely not an image")
    data = png_bytes((64, 64))
    with pytest.raises(ImageError, match="corrupt or truncated|not a readable"):
        load_image(data[: len(data) // 2])
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(ImageError, match="decompression bomb|max_image_pixels"):
        load_image(_bomb_png())


def test_oversized_image_bytes_and_pixels():
    s = ProGuardSettings(max_image_bytes=100)
    with pytest.raises(ImageError, match="max_image_bytes"):
        load_image(png_bytes((64, 64)), settings=s)
    s = ProGuardSettings(max_image_pixels=100)
    with pytest.raises(ImageError, match="max_image_pixels"):
        load_image(png_bytes((64, 64)), settings=s)


def test_too_many_images():
    with pytest.raises(InputTooLargeError):
        build_request("x", None, [png_bytes()] * 3, settings=ProGuardSettings(max_images=2))


def test_urls_not_fetched_by_default_and_file_urls_refused():
    with pytest.raises(ImageError, match="not fetched by default"):
        load_image("https://example.com/cat.png")
    with pytest.raises(ImageError, match="scheme"):
        load_image("file:///etc/passwd")
    # paths from message content are refused
    with pytest.raises(ImageError):
        normalize([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/hostname"}}]}])


def test_private_addresses_refused_when_fetching_enabled():
    s = ProGuardSettings(allow_image_urls=True)
    for url in ("http://127.0.0.1:9/x.png", "http://169.254.169.254/latest", "http://10.0.0.1/a.png"):
        with pytest.raises(ImageError, match="private|internal|loopback"):
            load_image(url, settings=s)


def test_malformed_data_urls():
    for url in ("data:image/png,notbase64", "data:text/plain;base64,aGVsbG8=", "data:image/png;base64,@@@@"):
        with pytest.raises(ImageError):
            load_image(url)


def test_truncation_keeps_head_and_tail():
    text = "HEAD" + "x" * 10_000 + "TAIL"
    out, truncated = truncate_text(text, 1000)
    assert truncated and len(out) <= 1000
    assert out.startswith("HEAD") and out.endswith("TAIL") and "characters omitted" in out
    assert truncate_text("short", 1000) == ("short", False)
    r = build_request(text, None, settings=ProGuardSettings(max_chars=1000))
    assert r.truncated


def test_empty_input_is_an_error():
    with pytest.raises(InputError, match="nothing to judge"):
        normalize("   ")


def test_cache_key_distinguishes_fields():
    assert normalize("a", "b").cache_key() != normalize("ab").cache_key()
    assert normalize("a", "b").cache_key() != normalize("b", "a").cache_key()
    assert normalize("a").cache_key() == normalize("a").cache_key()
    assert normalize("a", None, [png_bytes()]).cache_key() != normalize("a", None, [png_bytes(color=(0, 0, 0))]).cache_key()
