"""Prompt normalisation and image loading/resizing shared by training and inference."""
from __future__ import annotations

import io
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLargeError, InvalidImageError, InvalidPromptError

ImageInput = Union[str, Path, bytes, bytearray, Image.Image, np.ndarray]

MAX_PROMPT_CHARS = 1000
MAX_IMAGE_PIXELS = 40_000_000  # about 6300 x 6300; larger images are refused before decoding
MAX_IMAGE_BYTES = 20 * 1024 * 1024
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_SYMBOLS = {"#": " hash ", "*": " asterisk ", "&": " and ", "+": " plus ", "@": " at "}
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`]")
_NON_WORD = re.compile(r"[\W_]+")

# --------------------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """Lower-case, strip accents and punctuation, keep letters/digits of any script.

    "Thumbs up: Medium-Dark skin tone" -> "thumbs up medium dark skin tone",
    "Côte d’Ivoire" -> "cote divoire", "keycap: #" -> "keycap hash".
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text
                   if unicodedata.category(c) not in ("Mn", "Cf"))  # accents, zero-width joiners
    text = _APOSTROPHES.sub("", text.lower())
    for sym, word in _SYMBOLS.items():
        text = text.replace(sym, word)
    return " ".join(_NON_WORD.sub(" ", text).split())


def tokenize(text: str) -> list[str]:
    """Words of a normalised text."""
    return normalize_text(text).split()


def check_prompt(prompt: str, max_chars: int = MAX_PROMPT_CHARS) -> list[str]:
    """Tokens of a user prompt, or InvalidPromptError with a message a person can act on."""
    if not isinstance(prompt, str):
        raise InvalidPromptError(f"The prompt must be text, not {type(prompt).__name__}.")
    if len(prompt) > max_chars:
        raise InvalidPromptError(f"The prompt is {len(prompt)} characters long; the limit is {max_chars}.")
    tokens = tokenize(prompt)
    if not tokens:
        raise InvalidPromptError("The prompt has no words: type a few words such as 'red apple'.")
    return tokens


# --------------------------------------------------------------------------- images


def _open(src: ImageInput) -> Image.Image:
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, (bytes, bytearray)):
        if len(src) == 0:
            raise InvalidImageError("The image file is empty (0 bytes).")
        if len(src) > MAX_IMAGE_BYTES:
            raise ImageTooLargeError(f"The image file is {len(src) / 2**20:.1f} MB; the limit is {MAX_IMAGE_BYTES / 2**20:.0f} MB.")
        fp = io.BytesIO(src)
    elif isinstance(src, (str, Path)):
        path = Path(src)
        if not path.is_file():
            raise InvalidImageError(f"No image file at {path}.")
        size = path.stat().st_size
        if size == 0:
            raise InvalidImageError(f"The image file {path.name} is empty (0 bytes).")
        if size > MAX_IMAGE_BYTES:
            raise ImageTooLargeError(f"The image file is {size / 2**20:.1f} MB; the limit is {MAX_IMAGE_BYTES / 2**20:.0f} MB.")
        fp = path
    else:
        raise InvalidImageError(f"Cannot read an image from a {type(src).__name__}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"The image has too many pixels ({e}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InvalidImageError("The file is not an image crossgen can read (PNG, JPEG, GIF, WebP, BMP, TIFF).") from e


def _from_array(a: np.ndarray) -> Image.Image:
    if a.size == 0 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise InvalidImageError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape}.")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.max(initial=0) > 1.0:  # 16-bit or 0..255 floats
            a = a / (65535.0 if a.max() > 255 else 255.0)
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(a)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if img.mode.startswith("I") and a.max(initial=0) > 255 else (0.0, 255.0)
        if img.mode == "F" and a.max(initial=0) <= 1.0:
            hi = 1.0
        img = Image.fromarray(((np.clip(a, lo, hi) - lo) / (hi - lo) * 255 + 0.5).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    return img.convert("RGB")


def load_image(src: ImageInput, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Read an image from a path, bytes, PIL image or array: EXIF orientation applied, first frame
    of an animation, transparency composited on white, any mode converted to 8-bit RGB.

    Raises InvalidImageError / ImageTooLargeError with a readable message.
    """
    img = _open(src)
    w, h = img.size
    if w < 1 or h < 1:
        raise InvalidImageError("The image has no pixels.")
    if w * h > max_pixels:
        raise ImageTooLargeError(f"The image is {w}x{h} pixels; the limit is {max_pixels:,} pixels.")
    try:
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb(img)
    except InvalidImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InvalidImageError("The image file is damaged or truncated.") from e


def square(img: Image.Image, fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Pad to a square on a white background (emoji are drawn on white), keeping the aspect ratio."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def resize(img: Image.Image, size: int) -> np.ndarray:
    """Square-pad and resize to (size, size, 3) uint8 with OpenCV (area filter when shrinking)."""
    a = np.asarray(square(img))
    interp = cv2.INTER_AREA if a.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(a, (size, size), interpolation=interp)


def to_tensor(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 image(s) -> (B, 3, H, W) float in [0, 1]."""
    a = np.stack(images) if isinstance(images, list) else (images[None] if images.ndim == 3 else images)
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255.0)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> normalised with ImageNet statistics (what ResNet18 expects)."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> list of PIL RGB images."""
    a = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(im) for im in a]
