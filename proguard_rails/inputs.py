"""Input normalization: anything a framework hands us -> one ``GuardRequest``.

Accepted: a string; a (request, response) pair; OpenAI-style message lists (content as a
string or parts with text and images); LangChain-style message objects (duck-typed);
dicts with ``request``/``prompt`` and ``response`` keys; images as PIL images, paths,
bytes, base64, data URLs, and http(s) URLs when fetching is enabled.

Limits (settings): ``max_chars`` per text field (head and tail kept, the request marked
truncated), ``max_image_bytes``, ``max_image_pixels`` (checked from the header before any
pixel is decoded: decompression bombs are refused), ``max_images``. Corrupt or truncated
images raise ``ImageError`` naming the image. Local paths are only accepted where the
caller passed them directly (``images=[...]``), never from message content, which may be
attacker-controlled; ``file://`` URLs are always refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ipaddress
import json
import os
import re
import socket
import stat
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from .errors import ImageError, InputError, InputTooLargeError
from .settings import ProGuardSettings
from .verdict import Modality

CheckKind = Literal["conversation", "input", "output", "tool_call", "tool_result"]

_TRUNCATION_MARK = "\n[... {n} characters omitted by proguard-rails ...]\n"
_ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_B64_RE = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")


# ---------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageData:
    """A validated image: encoded bytes the model servers accept, plus what we learned."""

    data: bytes
    mime: str
    width: int
    height: int
    sha256: str
    source: str = "bytes"  # pil | path | bytes | base64 | data_url | url
    reencoded: bool = False

    def to_data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_pil(self):  # type: ignore[no-untyped-def]
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img.convert("RGB") if img.mode != "RGB" else img

    def __repr__(self) -> str:
        return f"ImageData({self.mime}, {self.width}x{self.height}, {len(self.data)} bytes, {self.sha256[:12]})"


def _settings(settings: ProGuardSettings | None) -> ProGuardSettings:
    return settings if settings is not None else ProGuardSettings()


def decode_image_bytes(
    data: bytes, *, settings: ProGuardSettings | None = None, source: str = "bytes", label: str = "image"
) -> ImageData:
    """Validate encoded image bytes; re-encode to PNG what servers may not take.

    The format is read from the bytes (a PNG called .jpg is fine). Animated images use
    their first frame; CMYK, palette, 16-bit and other modes are converted to RGB.
    """
    from PIL import Image, UnidentifiedImageError

    s = _settings(settings)
    if not data:
        raise ImageError(f"{label}: empty image data")
    if len(data) > s.max_image_bytes:
        raise ImageError(
            f"{label}: {len(data):,} bytes exceeds max_image_bytes={s.max_image_bytes:,} "
            "(setting PROGUARD_MAX_IMAGE_BYTES)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageError(f"{label}: invalid image size {width}x{height}")
            if width * height > s.max_image_pixels:
                raise ImageError(
                    f"{label}: {width}x{height} = {width * height:,} pixels exceeds "
                    f"max_image_pixels={s.max_image_pixels:,}; refused before decoding "
                    "(possible decompression bomb; setting PROGUARD_MAX_IMAGE_PIXELS)"
                )
            fmt = (img.format or "").upper()
            frames = int(getattr(img, "n_frames", 1) or 1)
            img.load()  # decodes the first frame; raises on truncated or corrupt data
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{label}: refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not a readable image (corrupt bytes or unsupported format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{label}: corrupt or truncated image data: {exc}") from exc

    digest = hashlib.sha256(data).hexdigest()
    if fmt in _ACCEPTED_FORMATS and frames == 1 and img.mode in ("RGB", "RGBA", "L"):
        return ImageData(data, _ACCEPTED_FORMATS[fmt], width, height, digest, source)
    try:
        rgb = _to_rgb(img)
        buf = io.BytesIO()
        rgb.save(buf, format="PNG")
    except Exception as exc:  # pragma: no cover - exotic modes
        raise ImageError(f"{label}: cannot convert {fmt or 'image'} mode {img.mode} to RGB: {exc}") from exc
    return ImageData(buf.getvalue(), "image/png", width, height, digest, source, reencoded=True)


def _to_rgb(img):  # type: ignore[no-untyped-def]
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit integer: scale to 8 bits rather than clipping everything to white.
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif mode == "F":
        img = img.convert("L")
    elif mode in ("P", "PA", "LA") and "transparency" in img.info or mode in ("PA", "LA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


def _decode_base64(text: str, label: str) -> bytes:
    cleaned = re.sub(r"\s+", "", text)
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"{label}: invalid base64 image data") from exc


def _parse_data_url(url: str, label: str) -> tuple[bytes, str | None]:
    head, sep, payload = url.partition(",")
    if not sep or not head.lower().startswith("data:"):
        raise ImageError(f"{label}: malformed data URL (expected data:<mime>;base64,<data>)")
    meta = head[5:].split(";")
    mime = meta[0].strip().lower() or None
    if mime and not mime.startswith("image/"):
        raise ImageError(f"{label}: data URL is {mime!r}, not an image")
    if "base64" not in [m.strip().lower() for m in meta[1:]]:
        raise ImageError(f"{label}: only base64 data URLs are supported")
    return _decode_base64(payload, label), mime


# IPv6 ranges that reach IPv4 or internal space although Python may call them global: 6to4, Teredo,
# NAT64 (well-known and local-use), IPv4-compatible, deprecated site-local, discard-only.
_V6_REFUSED = tuple(
    ipaddress.IPv6Network(n)
    for n in ("2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48", "::/96", "fec0::/10", "100::/64")
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_is_public(addr: IPAddress) -> bool:
    """True only for a globally routable unicast address (``ipaddress`` ``is_global``), with the
    ranges that tunnel to other address space refused too (6to4, Teredo, NAT64, IPv4-mapped
    and -compatible forms are judged by the IPv4 address they carry, or refused)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return address_is_public(addr.ipv4_mapped)
        if addr.is_site_local or any(addr in net for net in _V6_REFUSED):
            return False
    return bool(addr.is_global) and not (addr.is_multicast or addr.is_reserved or addr.is_link_local)


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (the one lookup a fetch makes; tests patch this)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ImageError(f"image URL host {host!r} does not resolve: {exc}") from exc
    out: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope id
        addr = ipaddress.ip_address(raw)
        if addr not in out:
            out.append(addr)
    if not out:
        raise ImageError(f"image URL host {host!r} resolves to no address")
    return out


def fetch_image_url(url: str, *, settings: ProGuardSettings | None = None, label: str = "image") -> bytes:
    """Fetch an http(s) image when ``allow_image_urls`` is on: size, time and address limits.

    The host is resolved once; unless ``allow_private_image_urls`` is set, every address it
    resolves to must be globally routable (``address_is_public``). The connection then goes to
    the address that was checked (the URL is rewritten to it, with the original ``Host`` header
    and TLS server name), so a second lookup cannot rebind the name to an internal address.
    No proxy variables, no redirects; the whole fetch ends within ``image_url_timeout``.
    """
    import httpx

    from ._deadline import time_left

    s = _settings(settings)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ImageError(f"{label}: URL scheme {parts.scheme!r} is not allowed (only http and https)")
    if not s.allow_image_urls:
        raise ImageError(
            f"{label}: image URLs are not fetched by default; pass the image as bytes/data URL, or "
            "enable fetching with allow_image_urls=True (PROGUARD_ALLOW_IMAGE_URLS=1)"
        )
    host = parts.hostname or ""
    if not host:
        raise ImageError(f"{label}: URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ImageError(f"{label}: invalid port in the image URL") from exc
    addrs = resolve_host(host, port)
    if not s.allow_private_image_urls:
        refused = [a for a in addrs if not address_is_public(a)]
        if refused:
            raise ImageError(
                f"{label}: refusing to fetch {host!r}: it resolves to {refused[0]}, which is not a globally "
                "routable address (loopback/private/internal, shared, link-local, tunnelled...); set "
                "allow_private_image_urls=True to allow"
            )
    addr = addrs[0]
    ip_host = f"[{addr}]" if addr.version == 6 else str(addr)
    pinned = urlunsplit((parts.scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
    host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    budget = time_left(s.image_url_timeout)
    if budget <= 0:
        raise ImageError(f"{label}: no time left in the check's deadline to fetch the image URL")
    stop_at = time.monotonic() + budget
    try:
        with (
            httpx.Client(timeout=budget, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "GET", pinned, headers={"Host": host_header, "Accept-Encoding": "identity"}, extensions=extensions
            ) as resp,
        ):
            if resp.is_redirect:
                raise ImageError(f"{label}: redirects are not followed for image URLs ({resp.status_code})")
            if resp.status_code != 200:
                raise ImageError(f"{label}: fetching the image URL returned HTTP {resp.status_code}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > s.max_image_bytes:
                raise ImageError(f"{label}: image URL content-length {declared} exceeds max_image_bytes")
            chunks: list[bytes] = []
            total = 0
            for chunk in resp.iter_raw():  # raw: a compressed body cannot inflate past the cap unseen
                total += len(chunk)
                if total > s.max_image_bytes:
                    raise ImageError(f"{label}: image URL body exceeds max_image_bytes={s.max_image_bytes:,}")
                if time.monotonic() > stop_at:
                    raise ImageError(f"{label}: fetching the image URL took longer than {budget:.1f}s")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ImageError(f"{label}: fetching image URL failed: {type(exc).__name__}: {exc}") from exc


def load_image(
    obj: Any,
    *,
    settings: ProGuardSettings | None = None,
    allow_paths: bool = True,
    label: str = "image",
) -> ImageData:
    """One image from a PIL image, Path, path string, bytes, base64, data URL, URL or content part."""
    s = _settings(settings)
    if isinstance(obj, ImageData):
        return obj
    if isinstance(obj, Mapping):
        return _load_image_part(obj, s, label)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return decode_image_bytes(bytes(obj), settings=s, source="bytes", label=label)
    if isinstance(obj, Path):
        if not allow_paths:
            raise ImageError(f"{label}: local paths are not accepted from message content")
        return _load_path(obj, s, label)
    if isinstance(obj, str):
        text = obj.strip()
        low = text[:16].lower()
        if low.startswith("data:"):
            data, _mime = _parse_data_url(text, label)
            return decode_image_bytes(data, settings=s, source="data_url", label=label)
        if low.startswith(("http://", "https://")):
            return decode_image_bytes(fetch_image_url(text, settings=s, label=label), settings=s, source="url", label=label)
        if "://" in text[:12]:
            raise ImageError(f"{label}: URL scheme of {text[:40]!r} is not allowed (file:// and others are refused)")
        if allow_paths and len(text) < 4096 and os.path.exists(text):
            return _load_path(Path(text), s, label)
        if len(text) >= 64 and _B64_RE.match(text[:4096]):
            return decode_image_bytes(_decode_base64(text, label), settings=s, source="base64", label=label)
        if allow_paths:
            raise ImageError(f"{label}: {text[:80]!r} is neither an existing file nor base64 image data")
        raise ImageError(f"{label}: not a data URL or base64 image data")
    if hasattr(obj, "save") and hasattr(obj, "size") and hasattr(obj, "mode"):  # PIL image
        w, h = obj.size
        if w * h > s.max_image_pixels:
            raise ImageError(f"{label}: {w}x{h} exceeds max_image_pixels={s.max_image_pixels:,}")
        buf = io.BytesIO()
        img = obj if obj.mode in ("RGB", "RGBA", "L") else _to_rgb(obj)
        img.save(buf, format="PNG")
        return decode_image_bytes(buf.getvalue(), settings=s, source="pil", label=label)
    raise ImageError(f"{label}: unsupported image type {type(obj).__name__}")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: Path, limit: int, label: str) -> bytes:
    """The bytes of a regular file (symlinks resolved first), at most ``limit`` of them.

    Directories, devices (``/dev/zero``), FIFOs and sockets are refused with ``ImageError``
    before anything is read; the file is opened non-blocking and checked again on the open
    descriptor, so one swapped in after the check cannot hang or flood the read.
    """
    try:
        real = path.resolve(strict=True)
        st = os.stat(real)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise ImageError(f"{label}: cannot read {path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{label}: {path} is {_file_kind(st.st_mode)}, not a regular file; pass an image file")
    if st.st_size > limit:
        raise ImageError(f"{label}: {path} is {st.st_size:,} bytes, over max_image_bytes={limit:,}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise ImageError(f"{label}: cannot open {path}: {exc}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{label}: {path} is {_file_kind(st.st_mode)}, not a regular file")
        try:
            data = f.read(limit + 1)
        except OSError as exc:  # /proc files and the like: regular, yet unreadable
            raise ImageError(f"{label}: cannot read {path}: {exc}") from exc
    if len(data) > limit:
        raise ImageError(f"{label}: {path} grew past max_image_bytes={limit:,} while being read")
    return data


def _load_path(path: Path, s: ProGuardSettings, label: str) -> ImageData:
    data = read_regular_file(path, s.max_image_bytes, label)
    return decode_image_bytes(data, settings=s, source="path", label=f"{label} ({path})")


def _load_image_part(part: Mapping[str, Any], s: ProGuardSettings, label: str) -> ImageData:
    """OpenAI ``image_url`` parts and LangChain standard image blocks."""
    ptype = part.get("type")
    if ptype in ("image_url", "input_image"):
        iu = part.get("image_url")
        url = iu.get("url") if isinstance(iu, Mapping) else iu
        if not isinstance(url, str):
            raise ImageError(f"{label}: image_url part without a url")
        return load_image(url, settings=s, allow_paths=False, label=label)
    source = part.get("source")
    if isinstance(source, Mapping):  # {"type": "image", "source": {"type": "base64"|"url", "data"|"url": ...}}
        return _load_image_part({k: v for k, v in source.items() if k in ("base64", "data", "url")}, s, label)
    # LangChain v1 standard blocks: {"type": "image", "base64"|"data"|"url": ..., "mime_type": ...}
    for key in ("base64", "data"):
        if isinstance(part.get(key), (str, bytes)):
            payload = part[key]
            if isinstance(payload, bytes):
                return decode_image_bytes(payload, settings=s, source="bytes", label=label)
            if payload.startswith("data:"):
                return load_image(payload, settings=s, allow_paths=False, label=label)
            return decode_image_bytes(_decode_base64(payload, label), settings=s, source="base64", label=label)
    if isinstance(part.get("url"), str):
        return load_image(part["url"], settings=s, allow_paths=False, label=label)
    if isinstance(part.get("image"), (bytes, str)) or hasattr(part.get("image"), "save"):
        return load_image(part["image"], settings=s, allow_paths=False, label=label)
    raise ImageError(f"{label}: unrecognized image part (keys: {sorted(part)})")


# ---------------------------------------------------------------------------- text
def clean_text(text: str) -> str:
    """Normalize newlines and drop NULs (some servers reject them); nothing else changes."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def truncate_text(text: str, max_chars: int) -> tuple[str, bool]:
    """Keep the head (two thirds) and tail (one third) of over-long text, with a visible mark.

    Attacks and answers tend to sit at either end of a long text, so both ends are kept.
    """
    if len(text) <= max_chars:
        return text, False
    mark_len = len(_TRUNCATION_MARK.format(n=len(text)))
    budget = max(max_chars - mark_len, 2)
    head = (budget * 2) // 3
    tail = budget - head
    omitted = len(text) - head - tail
    return text[:head] + _TRUNCATION_MARK.format(n=omitted) + text[len(text) - tail :], True


# ---------------------------------------------------------------------------- request
@dataclass(frozen=True)
class GuardRequest:
    """One thing to judge: the user's side, the agent's side (optional) and images."""

    user_text: str = ""
    agent_text: str | None = None
    images: tuple[ImageData, ...] = ()
    truncated: bool = False
    kind: CheckKind = "conversation"
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: content that came with the input but is not in this request ("message 2: file part",
    #: "message 0: system message"); the Decision lists it
    not_judged: tuple[str, ...] = ()
    #: the part of ``not_judged`` the guard cannot read (files, audio, video), as opposed to parts
    #: skipped by configuration: ``Policy.unjudgeable`` refuses these or lets them through
    unjudgeable: tuple[str, ...] = ()

    @property
    def modality(self) -> Modality:
        if self.images:
            if self.user_text.strip() or (self.agent_text or "").strip():
                return Modality.TEXT_IMAGE
            return Modality.IMAGE
        return Modality.TEXT

    @property
    def has_response(self) -> bool:
        return bool(self.agent_text and self.agent_text.strip())

    def cache_key(self) -> str:
        """A hash of what is judged, over an unambiguous (JSON) encoding: no two different requests
        share a key, whatever separators their texts contain."""
        encoded = json.dumps(
            [self.kind, self.user_text, self.agent_text, [img.sha256 for img in self.images]], ensure_ascii=False
        )
        return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()

    def with_(self, **changes: Any) -> GuardRequest:
        from dataclasses import replace

        return replace(self, **changes)


_ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "agent": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


def _message_role_content(msg: Any) -> tuple[str, Any]:
    if isinstance(msg, Mapping):
        role = msg.get("role", msg.get("type", "user"))
        content = msg.get("content", "")
    elif isinstance(msg, (tuple, list)) and len(msg) == 2 and isinstance(msg[0], str):
        role, content = msg
    else:  # LangChain BaseMessage and look-alikes (duck typing keeps the core free of langchain)
        role = getattr(msg, "role", None) or getattr(msg, "type", None)
        content = getattr(msg, "content", None)
        if role is None or content is None:
            raise InputError(f"unsupported message type {type(msg).__name__}")
    norm = _ROLE_ALIASES.get(str(role).lower())
    if norm is None:
        raise InputError(f"unknown message role {role!r}")
    return norm, content


_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
#: Content the guard model cannot read (binary documents, sound, video): refused or let through by
#: ``Policy.unjudgeable``, and listed in ``Decision.not_judged`` either way.
UNJUDGEABLE_PARTS = frozenset({"file", "input_file", "file_url", "input_audio", "audio", "video", "document"})


def to_json_text(value: Any, label: str) -> str:
    """Structured content as the JSON text the model judges (``InputError`` if it cannot be written)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError, TypeError) as exc:
        raise InputError(f"{label}: content cannot be serialized for judging ({type(exc).__name__})") from exc


def _split_content(content: Any, *, label: str) -> tuple[list[str], list[Any], list[str]]:
    """Text parts, image parts, and what cannot be judged (described, for ``not_judged``).

    Text and reasoning parts are text; JSON parts (``{"type": "json", "json": ...}``) and any
    other structured part (tool-use blocks, refusals, parts of types unknown here) are judged as
    their JSON text; images go to the image path; files, audio and video cannot be judged.
    Nothing is dropped silently.
    """
    if content is None:
        return [], [], []
    if isinstance(content, str):
        return [content], [], []
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, (list, tuple)):
        raise InputError(f"{label}: unsupported content {type(content).__name__}")
    texts: list[str] = []
    images: list[Any] = []
    not_judged: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise InputError(f"{label}: unsupported content part {type(part).__name__}")
        ptype = str(part.get("type", "text"))
        if ptype in _IMAGE_PARTS:
            images.append(part)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("reasoning"), str):
            texts.append(part["reasoning"])
        elif ptype == "json" and "json" in part:
            texts.append(to_json_text(part["json"], label))
        elif ptype in UNJUDGEABLE_PARTS:
            not_judged.append(f"{label}: {ptype} part")
        else:
            texts.append(to_json_text(dict(part), label))
    return texts, images, not_judged


def content_parts(output: Any, *, label: str) -> tuple[str, list[Any], list[str]]:
    """A tool's output (or any content) as judged text, images and what cannot be judged.

    A string is text; a list of content blocks (``[{"type": "text" | "json" | "image" | "file", ...}]``,
    as LangChain ``ToolMessage.content`` and MCP results carry them) or one such block is split by
    ``_split_content``; a message-like object by its ``content``; anything else is judged as JSON.
    """
    if isinstance(output, str):
        return output, [], []
    if hasattr(output, "content") and not isinstance(output, Mapping):
        return content_parts(output.content, label=label)
    is_block = isinstance(output, Mapping) and isinstance(output.get("type"), str)
    is_blocks = isinstance(output, (list, tuple)) and bool(output) and all(
        isinstance(b, str) or (isinstance(b, Mapping) and isinstance(b.get("type"), str)) for b in output
    )
    if is_block or is_blocks:
        texts, images, not_judged = _split_content(output, label=label)
        return "\n".join(texts), images, not_judged
    return to_json_text(output, label), [], []


def request_from_messages(
    messages: Sequence[Any],
    *,
    settings: ProGuardSettings | None = None,
    include_system: bool | None = None,
    kind: CheckKind = "conversation",
) -> GuardRequest:
    """Fold a chat transcript into ProGuard's single User/Agent turn.

    The last user turn is the request; assistant turns after it are the response. Earlier
    turns are kept as labelled context at the start of the request, so content split across
    messages is judged together and nothing is dropped silently. System and developer
    messages are judged as context too, unless ``include_system=False`` (default: the
    ``system_messages`` setting); skipped ones, and parts that cannot be judged (files, audio),
    are listed in ``GuardRequest.not_judged``.
    """
    s = _settings(settings)
    if include_system is None:
        include_system = s.system_messages == "judge"
    turns: list[tuple[str, str, list[Any]]] = []
    not_judged: list[str] = []  # parts the guard cannot read
    skipped: list[str] = []  # system messages left out by configuration
    for i, msg in enumerate(messages):
        role, content = _message_role_content(msg)
        label = f"message {i}"
        texts, imgs, unjudged = _split_content(content, label=label)
        if role == "system" and not include_system:
            skipped.append(f"{label}: system message (system_messages='skip')")
            continue
        not_judged.extend(unjudged)
        turns.append((role, "\n".join(t for t in texts), imgs))
    if not turns:
        raise InputError("no user or assistant content to judge in these messages")
    last_user = max((i for i, t in enumerate(turns) if t[0] in ("user", "tool", "system")), default=-1)
    response_turns = turns[last_user + 1 :]
    context_turns = turns[: max(last_user, 0)]
    labels = {"user": "earlier user turn", "assistant": "earlier agent turn", "tool": "tool output",
              "system": "system instructions"}
    pieces = [f"[{labels[r]}]\n{t}" for r, t, _ in context_turns if t.strip()]
    if last_user >= 0:
        role, text, _ = turns[last_user]
        pieces.append(text if role == "user" else f"[{labels[role]}]\n{text}")
    user_text = "\n\n".join(pieces)
    agent_text = "\n\n".join(t for _, t, _ in response_turns if t.strip()) or None
    raw_images = [img for _, _, imgs in turns for img in imgs]
    req = build_request(user_text, agent_text, raw_images, settings=s, allow_paths=False, kind=kind,
                        not_judged=not_judged, empty_ok=bool(not_judged))
    return req.with_(not_judged=(*skipped, *req.not_judged)) if skipped else req


def build_request(
    user_text: str | None,
    agent_text: str | None = None,
    images: Iterable[Any] | None = None,
    *,
    settings: ProGuardSettings | None = None,
    allow_paths: bool = True,
    kind: CheckKind = "conversation",
    metadata: Mapping[str, Any] | None = None,
    not_judged: Iterable[str] = (),
    empty_ok: bool = False,
) -> GuardRequest:
    """Apply the limits and build a request from plain parts.

    ``not_judged`` describes content that came with these parts but that the guard cannot read
    (``GuardRequest.unjudgeable``); with ``empty_ok`` a request may hold nothing else (the policy
    then refuses or allows it).
    """
    s = _settings(settings)
    imgs = list(images or [])
    if len(imgs) > s.max_images:
        raise InputTooLargeError(
            f"{len(imgs)} images exceed max_images={s.max_images} (setting PROGUARD_MAX_IMAGES)"
        )
    loaded = tuple(
        load_image(img, settings=s, allow_paths=allow_paths, label=f"image {i}") for i, img in enumerate(imgs)
    )
    ut, t1 = truncate_text(clean_text(user_text or ""), s.max_chars)
    at: str | None = None
    t2 = False
    if agent_text is not None:
        at, t2 = truncate_text(clean_text(agent_text), s.max_chars)
    unreadable = tuple(not_judged)
    if not ut.strip() and not (at or "").strip() and not loaded and not (empty_ok and unreadable):
        raise InputError("nothing to judge: empty text and no image")
    return GuardRequest(ut, at, loaded, truncated=t1 or t2, kind=kind, metadata=dict(metadata or {}),
                        not_judged=unreadable, unjudgeable=unreadable)


def normalize(
    obj: Any,
    response: Any = None,
    images: Iterable[Any] | None = None,
    *,
    settings: ProGuardSettings | None = None,
    kind: CheckKind = "conversation",
) -> GuardRequest:
    """The one entry point the engine and adapters use."""
    s = _settings(settings)
    if isinstance(obj, GuardRequest):
        if response is not None or images:
            raise InputError("pass response/images inside the GuardRequest, not beside it")
        return obj
    resp_text: str | None = None
    extra_images: list[Any] = list(images or [])
    not_judged: list[str] = []
    if response is not None:
        resp_text, resp_images, resp_nj = _parts(response, "response")
        extra_images += resp_images
        not_judged += resp_nj

    def build(user: str, agent: str | None, imgs: list[Any], more_nj: Iterable[str] = ()) -> GuardRequest:
        nj = [*more_nj, *not_judged]
        return build_request(user, agent, imgs, settings=s, kind=kind, not_judged=nj, empty_ok=bool(nj))

    if obj is None:
        return build("", resp_text, extra_images)
    if isinstance(obj, str):
        return build(obj, resp_text, extra_images)
    if isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(x, (str, type(None))) for x in obj):
        return build(obj[0] or "", obj[1] if resp_text is None else resp_text, extra_images)
    if isinstance(obj, Mapping):
        if "messages" in obj:
            return normalize(obj["messages"], response, images, settings=s, kind=kind)
        req_value = next((obj[k] for k in ("request", "prompt", "input", "question", "query") if k in obj), None)
        resp_value = next((obj[k] for k in ("response", "output", "answer", "completion") if k in obj), None)
        imgs = list(obj.get("images") or ([obj["image"]] if obj.get("image") is not None else []))
        if req_value is None and resp_value is None and not imgs:
            if "role" in obj or "type" in obj:
                return normalize([obj], response, images, settings=s, kind=kind)
            raise InputError(f"cannot find text to judge in a dict with keys {sorted(obj)}")
        more: list[str] = []
        user = ""
        if req_value is not None:
            user, req_images, req_nj = _parts(req_value, "request")
            imgs += req_images
            more += req_nj
        agent = resp_text
        if agent is None and resp_value is not None:
            agent, resp_images, resp_nj = _parts(resp_value, "response")
            imgs += resp_images
            more += resp_nj
        return build(user, agent, extra_images + imgs, more)
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        req = request_from_messages(obj, settings=s, kind=kind)
        if resp_text is not None or extra_images or not_judged:
            rebuilt = build(req.user_text, resp_text if resp_text is not None else req.agent_text,
                            list(req.images) + extra_images, req.unjudgeable)
            skipped = tuple(x for x in req.not_judged if x not in req.unjudgeable)
            return rebuilt.with_(not_judged=(*skipped, *rebuilt.not_judged)) if skipped else rebuilt
        return req
    if hasattr(obj, "content") and (hasattr(obj, "type") or hasattr(obj, "role")):
        return normalize([obj], response, images, settings=s, kind=kind)
    raise InputError(f"cannot judge an object of type {type(obj).__name__}; pass text, messages or a GuardRequest")


def _parts(value: Any, label: str) -> tuple[str, list[Any], list[str]]:
    """Text, images and what cannot be judged, from one request or response value."""
    if isinstance(value, str):
        return value, [], []
    if hasattr(value, "content") or isinstance(value, (Mapping, list, tuple)):
        return content_parts(value, label=label)
    return str(value), [], []


__all__ = [
    "UNJUDGEABLE_PARTS",
    "CheckKind",
    "GuardRequest",
    "ImageData",
    "address_is_public",
    "build_request",
    "content_parts",
    "decode_image_bytes",
    "fetch_image_url",
    "load_image",
    "read_regular_file",
    "resolve_host",
    "normalize",
    "request_from_messages",
    "truncate_text",
]
