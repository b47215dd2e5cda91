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
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

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


def _is_private_host(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ImageError(f"image URL host {host!r} does not resolve: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if (
            addr.is_private
            or addr.is_loopback
            or addr.is_link_local
            or addr.is_reserved
            or addr.is_multicast
            or addr.is_unspecified
        ):
            return True
    return False


def fetch_image_url(url: str, *, settings: ProGuardSettings | None = None, label: str = "image") -> bytes:
    """Fetch an http(s) image when ``allow_image_urls`` is on: size, time and address limits."""
    import httpx

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
    if not s.allow_private_image_urls and _is_private_host(host):
        raise ImageError(
            f"{label}: refusing to fetch {host!r}: it resolves to a loopback/private/internal address "
            "(set allow_private_image_urls=True to allow)"
        )
    try:
        with (
            httpx.Client(timeout=s.image_url_timeout, follow_redirects=False) as client,
            client.stream("GET", url) as resp,
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
            for chunk in resp.iter_bytes():
                total += len(chunk)
                if total > s.max_image_bytes:
                    raise ImageError(f"{label}: image URL body exceeds max_image_bytes={s.max_image_bytes:,}")
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


def _load_path(path: Path, s: ProGuardSettings, label: str) -> ImageData:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{label}: cannot read {path}: {exc}") from exc
    if size > s.max_image_bytes:
        raise ImageError(f"{label}: {path} is {size:,} bytes, over max_image_bytes={s.max_image_bytes:,}")
    return decode_image_bytes(path.read_bytes(), settings=s, source="path", label=f"{label} ({path})")


def _load_image_part(part: Mapping[str, Any], s: ProGuardSettings, label: str) -> ImageData:
    """OpenAI ``image_url`` parts and LangChain standard image blocks."""
    ptype = part.get("type")
    if ptype in ("image_url", "input_image"):
        iu = part.get("image_url")
        url = iu.get("url") if isinstance(iu, Mapping) else iu
        if not isinstance(url, str):
            raise ImageError(f"{label}: image_url part without a url")
        return load_image(url, settings=s, allow_paths=False, label=label)
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
        h = hashlib.sha256()
        for part in (self.kind, self.user_text, "\x1f", self.agent_text if self.agent_text is not None else "\x00"):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        for img in self.images:
            h.update(img.sha256.encode())
        return h.hexdigest()

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


def _split_content(content: Any, *, label: str) -> tuple[list[str], list[Any], list[str]]:
    """Text parts, image parts, and the types of parts skipped (kept for transparency)."""
    if content is None:
        return [], [], []
    if isinstance(content, str):
        return [content], [], []
    if isinstance(content, Mapping):
        content = [content]
    texts: list[str] = []
    images: list[Any] = []
    skipped: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise InputError(f"{label}: unsupported content part {type(part).__name__}")
        ptype = str(part.get("type", "text"))
        if ptype in ("image_url", "image", "input_image"):
            images.append(part)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("reasoning"), str):
            texts.append(part["reasoning"])
        else:
            skipped.append(ptype)
    return texts, images, skipped


def request_from_messages(
    messages: Sequence[Any],
    *,
    settings: ProGuardSettings | None = None,
    include_system: bool = False,
    kind: CheckKind = "conversation",
) -> GuardRequest:
    """Fold a chat transcript into ProGuard's single User/Agent turn.

    The last user turn is the request; assistant turns after it are the response. Earlier
    turns are kept as labelled context at the start of the request, so content split across
    messages is judged together and nothing is dropped silently.
    """
    s = _settings(settings)
    turns: list[tuple[str, str, list[Any]]] = []
    skipped: list[str] = []
    dropped_system = 0
    for i, msg in enumerate(messages):
        role, content = _message_role_content(msg)
        texts, imgs, sk = _split_content(content, label=f"message {i}")
        skipped.extend(sk)
        if role == "system" and not include_system:
            dropped_system += 1  # the app's own instructions are trusted, not judged; noted below
            continue
        turns.append((role, "\n".join(t for t in texts), imgs))
    if not turns:
        raise InputError("no user or assistant content to judge in these messages")
    last_user = max((i for i, t in enumerate(turns) if t[0] in ("user", "tool", "system")), default=-1)
    response_turns = turns[last_user + 1 :]
    context_turns = turns[: max(last_user, 0)]
    labels = {"user": "earlier user turn", "assistant": "earlier agent turn", "tool": "tool output", "system": "system"}
    pieces = [f"[{labels[r]}]\n{t}" for r, t, _ in context_turns if t.strip()]
    if last_user >= 0:
        role, text, _ = turns[last_user]
        pieces.append(text if role == "user" else f"[{labels[role]}]\n{text}")
    user_text = "\n\n".join(pieces)
    agent_text = "\n\n".join(t for _, t, _ in response_turns if t.strip()) or None
    raw_images = [img for _, _, imgs in turns for img in imgs]
    req = build_request(user_text, agent_text, raw_images, settings=s, allow_paths=False, kind=kind)
    if skipped:
        req = req.with_(metadata={**req.metadata, "skipped_parts": skipped})
    if dropped_system:
        req = req.with_(metadata={**req.metadata, "system_messages_not_judged": dropped_system})
    return req


def build_request(
    user_text: str | None,
    agent_text: str | None = None,
    images: Iterable[Any] | None = None,
    *,
    settings: ProGuardSettings | None = None,
    allow_paths: bool = True,
    kind: CheckKind = "conversation",
    metadata: Mapping[str, Any] | None = None,
) -> GuardRequest:
    """Apply the limits and build a request from plain parts."""
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
    if not ut.strip() and not (at or "").strip() and not loaded:
        raise InputError("nothing to judge: empty text and no image")
    return GuardRequest(ut, at, loaded, truncated=t1 or t2, kind=kind, metadata=dict(metadata or {}))


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
    resp_text = _as_text(response) if response is not None else None
    if obj is None:
        return build_request("", resp_text, images, settings=s, kind=kind)
    if isinstance(obj, str):
        return build_request(obj, resp_text, images, settings=s, kind=kind)
    if isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(x, (str, type(None))) for x in obj):
        return build_request(obj[0] or "", obj[1], images, settings=s, kind=kind)
    if isinstance(obj, Mapping):
        if "messages" in obj:
            return normalize(obj["messages"], response, images, settings=s, kind=kind)
        req_text = next((obj[k] for k in ("request", "prompt", "input", "question", "query") if k in obj), None)
        resp = next((obj[k] for k in ("response", "output", "answer", "completion") if k in obj), None)
        imgs = list(images or []) + list(obj.get("images") or ([obj["image"]] if obj.get("image") is not None else []))
        if req_text is None and resp is None and not imgs:
            if "role" in obj or "type" in obj:
                return normalize([obj], response, images, settings=s, kind=kind)
            raise InputError(f"cannot find text to judge in a dict with keys {sorted(obj)}")
        return build_request(
            _as_text(req_text) if req_text is not None else "",
            resp_text if resp_text is not None else (_as_text(resp) if resp is not None else None),
            imgs,
            settings=s,
            kind=kind,
        )
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        req = request_from_messages(obj, settings=s, kind=kind)
        if resp_text is not None or images:
            extra = list(req.images) + list(images or [])
            return build_request(req.user_text, resp_text if resp_text is not None else req.agent_text, extra,
                                 settings=s, kind=kind)
        return req
    if hasattr(obj, "content") and (hasattr(obj, "type") or hasattr(obj, "role")):
        return request_from_messages([obj], settings=s, kind=kind)
    raise InputError(f"cannot judge an object of type {type(obj).__name__}; pass text, messages or a GuardRequest")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "content"):
        texts, _, _ = _split_content(value.content, label="response")
        return "\n".join(texts)
    if isinstance(value, (Mapping, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


__all__ = [
    "CheckKind",
    "GuardRequest",
    "ImageData",
    "build_request",
    "decode_image_bytes",
    "fetch_image_url",
    "load_image",
    "normalize",
    "request_from_messages",
    "truncate_text",
]
