"""Bad (and valid-but-odd) inputs as users send them, made in memory: no data files needed.

Each `Case` is a prompt or the bytes of an uploaded file, with what must come back: a named crossgen
exception whose message matches `message` (library) and the same message in the app's error
(`api_message` where the app answers differently), or `error=None` for a normal result.
"""
from __future__ import annotations

import io
import itertools
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image

from crossgen import ImageTooLargeError, InvalidImageError, InvalidPromptError, UnknownWordsError
from crossgen.preprocess import MAX_IMAGE_BYTES, MAX_PROMPT_CHARS

MB = 1024 * 1024
UPLOAD_LIMIT = 10 * MB  # app.MAX_UPLOAD = "10mb": Gradio counts 1 MB as 2**20 bytes
# gradio_client refuses such a file before sending it; the server answers 413 with the second wording
OVER_UPLOAD_LIMIT = rf"(exceeds the maximum file size|File size exceeded maximum allowed size) of {UPLOAD_LIMIT} bytes"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "prompt" or "image"
    data: str | Callable[[], bytes]  # the prompt, or a function making the file's bytes
    error: type[Exception] | None = None  # crossgen exception the library raises; None = a normal answer
    message: str = ""  # regex the error message must match (library and app)
    suffix: str = ".png"  # uploaded file's name ends so
    api_message: str | None = None  # regex for the app's answer where it differs from the library's

    def payload(self) -> str | bytes:
        return self.data if isinstance(self.data, str) else self.data()


# ----------------------------------------------------------------------------------------- file makers


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png(width: int, height: int, bit_depth: int, color_type: int, rows) -> bytes:
    """A PNG written by hand (any size, any depth) from an iterable of unfiltered rows; streams, so a
    20000 x 20000 picture of zeros costs a few KB of memory and gives a ~50 KB file."""
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(b"\x00" + row) for row in rows) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def emoji_like(size: int = 48, mode: str = "RGBA") -> Image.Image:
    """A red disc with a dark outline on a transparent (or white) background: a stand-in emoji."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    a = np.zeros((size, size, 4), np.uint8)
    a[r < size * 0.42] = (220, 30, 40, 255)
    a[(r >= size * 0.36) & (r < size * 0.42)] = (60, 10, 10, 255)
    img = Image.fromarray(a, "RGBA")
    return img if mode == "RGBA" else Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert(mode)


def bomb_png(side: int = 20_000) -> bytes:
    """A complete, valid 1-bit PNG of side x side zeros (20000^2 = 400 million pixels in ~50 KB)."""
    return png(side, side, 1, 0, itertools.repeat(bytes((side + 7) // 8), side))


def header_only_png(side: int = 100_000) -> bytes:
    """A PNG whose header claims side x side pixels and whose data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")


def png_16bit_rgb(size: int = 32) -> bytes:
    """48-bit RGB PNG (16 bits per channel): a red-to-blue gradient."""
    rows = []
    for y in range(size):
        v = np.zeros((size, 3), ">u2")
        v[:, 0] = np.linspace(65535, 0, size)
        v[:, 2] = np.linspace(0, 65535, size)
        v[:, 1] = y * 65535 // size
        rows.append(v.tobytes())
    return png(size, size, 16, 2, rows)


def png_16bit_gray(size: int = 32) -> bytes:
    return encode(Image.fromarray((np.arange(size * size).reshape(size, size) * 60).astype(np.uint16)))


def truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise))
    return data[: len(data) // 3]


def cmyk_jpeg() -> bytes:
    return encode(emoji_like(48, "RGB").convert("CMYK"), "JPEG", quality=90)


def palette_png() -> bytes:
    return encode(emoji_like().convert("P"))  # keeps a transparent palette entry


def animated_gif() -> bytes:
    frames = [emoji_like(48, "RGB"), Image.new("RGB", (48, 48), (0, 160, 0)), Image.new("RGB", (48, 48), (0, 0, 200))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def exif_rotated_jpeg() -> bytes:
    img = Image.new("RGB", (60, 30), "white")
    img.paste(emoji_like(30, "RGB"), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return encode(img, "JPEG", exif=exif, quality=90)


def oversized_png(nbytes: int) -> bytes:
    """A valid small PNG followed by junk up to `nbytes` (image readers stop at IEND)."""
    head = encode(emoji_like())
    return head + bytes(nbytes - len(head))


SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="alert(1)">'
                   b'<script>alert(document.cookie)</script><rect width="10" height="10"/></svg>')

# ----------------------------------------------------------------------------------------- the cases

NOT_READABLE = r"not an image crossgen can read"
DAMAGED = r"damaged or truncated"
EMPTY = r"empty \(0 bytes\)"
NO_WORDS = r"The prompt has no words"
NO_KNOWN = r"No known word in the prompt"

PROMPT_CASES = [
    Case("empty", "prompt", "", InvalidPromptError, NO_WORDS),
    Case("whitespace-only", "prompt", "  \t \n\u00a0\u2003  ", InvalidPromptError, NO_WORDS),
    Case("10000-chars", "prompt", ("red apple " * 1000)[:10_000], InvalidPromptError,
         rf"10000 characters long; the limit is {MAX_PROMPT_CHARS}"),
    Case("emoji-only", "prompt", "🍎🐶🚗❤️👍🏽", InvalidPromptError, NO_WORDS),
    Case("unknown-words", "prompt", "zzxq blorptastic qwfp", UnknownWordsError, NO_KNOWN),
    Case("chinese", "prompt", "红色的苹果", UnknownWordsError, NO_KNOWN),
    Case("control-chars", "prompt", "\x00\x01\x07\x08\x1b\x7f\r\n", InvalidPromptError, NO_WORDS),
    Case("html-script", "prompt", '<script>alert("x")</script><img src=x onerror=alert(1)>', UnknownWordsError, NO_KNOWN),
    Case("rtl-override-zero-width", "prompt", "\u202e\u200b\u200d\ufeff", InvalidPromptError, NO_WORDS),
    # odd but usable: the known words are drawn, the rest is reported
    Case("control-char-between-words", "prompt", "red\x00apple"),
    Case("html-around-known-words", "prompt", "red apple <script>alert(1)</script>"),
    Case("shouting-with-emoji", "prompt", "RED APPLE!!! 🍎🍎"),
]

IMAGE_CASES = [
    Case("text-named-png", "image", lambda: b"hello, this is not a picture\n" * 20, InvalidImageError, NOT_READABLE),
    Case("svg-with-script-named-png", "image", lambda: SVG_WITH_SCRIPT, InvalidImageError, NOT_READABLE),
    Case("truncated-png", "image", truncated_png, InvalidImageError, DAMAGED),
    Case("zero-bytes", "image", lambda: b"", InvalidImageError, EMPTY),
    Case("zero-by-zero-header", "image", lambda: png(0, 0, 8, 2, []), InvalidImageError, NOT_READABLE),
    Case("bomb-20000x20000-1bit", "image", lru_cache(None)(bomb_png), ImageTooLargeError,
         r"too many pixels .*400000000 pixels"),
    Case("bomb-header-only-100000x100000", "image", header_only_png, ImageTooLargeError, r"too many pixels"),
    Case("8000x8000-1bit", "image", lambda: bomb_png(8000), ImageTooLargeError,
         r"8000x8000 pixels; the limit is 40,000,000 pixels"),
    Case("over-upload-limit", "image", lambda: oversized_png(MAX_IMAGE_BYTES + MB), ImageTooLargeError,
         r"limit is 20 MB", api_message=OVER_UPLOAD_LIMIT),
    # valid but odd: a normal caption
    Case("1x1", "image", lambda: encode(Image.new("RGB", (1, 1), (200, 20, 20)))),
    Case("cmyk-jpeg", "image", cmyk_jpeg, suffix=".jpg"),
    Case("16bit-gray-png", "image", png_16bit_gray),
    Case("16bit-rgb-png", "image", png_16bit_rgb),
    Case("palette-png", "image", palette_png),
    Case("rgba-png", "image", lambda: encode(emoji_like())),
    Case("grayscale-png", "image", lambda: encode(emoji_like(48, "L"))),
    Case("gray-alpha-png", "image", lambda: encode(emoji_like().convert("LA"))),
    Case("animated-gif", "image", animated_gif, suffix=".gif"),
    Case("exif-rotated-jpeg", "image", exif_rotated_jpeg, suffix=".jpg"),
    Case("webp", "image", lambda: encode(emoji_like(), "WEBP"), suffix=".webp"),
    Case("jpeg-named-png", "image", lambda: encode(emoji_like(48, "RGB"), "JPEG")),
    Case("panorama-3000x2", "image", lambda: encode(Image.new("RGB", (3000, 2), (0, 90, 200)))),
]

CASES = PROMPT_CASES + IMAGE_CASES
