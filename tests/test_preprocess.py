import io

import numpy as np
import pytest
from PIL import Image

from crossgen import ImageTooLargeError, InvalidImageError, InvalidPromptError, load_image, normalize_text
from crossgen.preprocess import check_prompt, resize, to_tensor


@pytest.mark.parametrize("raw, expected", [
    ("Red Apple", "red apple"),
    ("  thumbs up:   Medium-Dark skin tone ", "thumbs up medium dark skin tone"),
    ("Côte d’Ivoire", "cote divoire"),
    ("keycap: #", "keycap hash"),
    ("HASH KEY", "hash key"),
    ("🍎 apple!!", "apple"),
    ("ＲＥＤ　ＡＰＰＬＥ", "red apple"),  # full-width letters and space
    ("<script>alert(1)</script>", "script alert 1 script"),
    ("line\x00one\ttwo\nthree", "line one two three"),
    ("红苹果", "红苹果"),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("bad", ["", "   ", "🍎🐶", "!!!", "\x00\x01"])
def test_check_prompt_rejects_wordless(bad):
    with pytest.raises(InvalidPromptError):
        check_prompt(bad)


def test_check_prompt_rejects_long_and_non_text():
    with pytest.raises(InvalidPromptError, match="limit"):
        check_prompt("apple " * 2000)
    with pytest.raises(InvalidPromptError):
        check_prompt(None)


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def red_square(mode: str = "RGBA") -> Image.Image:
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (2, 2, 6, 6))
    return im


def test_rgba_composited_on_white():
    out = load_image(red_square())
    a = np.asarray(out)
    assert out.mode == "RGB" and a[0, 0].tolist() == [255, 255, 255] and a[3, 3].tolist() == [255, 0, 0]


def test_palette_with_transparency_and_la_and_gray():
    p = red_square().convert("P")  # keeps transparency in info
    assert np.asarray(load_image(png_bytes(p)))[3, 3].tolist() == [255, 0, 0]
    la = Image.new("LA", (4, 4), (0, 0))
    assert np.asarray(load_image(la))[0, 0].tolist() == [255, 255, 255]
    gray = Image.new("L", (4, 4), 100)
    assert np.asarray(load_image(gray))[0, 0].tolist() == [100, 100, 100]


def test_16bit_png_and_arrays():
    a16 = np.full((5, 5), 65535, dtype=np.uint16)
    im16 = Image.fromarray(a16)
    assert np.asarray(load_image(png_bytes(im16)))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(load_image(a16))[0, 0].tolist() == [255, 255, 255]
    f = np.zeros((4, 4, 3), dtype=np.float32)
    f[..., 1] = 1.0
    assert np.asarray(load_image(f))[0, 0].tolist() == [0, 255, 0]
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent -> white
    assert np.asarray(load_image(rgba))[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(InvalidImageError):
        load_image(np.zeros((4, 4, 7), dtype=np.uint8))


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    out = np.asarray(load_image(png_bytes(cmyk, "JPEG")))
    assert out[4, 4, 0] > 200 and out[4, 4, 1] < 60


def test_exif_orientation_applied():
    im = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = load_image(png_bytes(im, "JPEG", exif=exif))
    assert out.size == (10, 20)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    out = np.asarray(load_image(path))
    assert out[3, 3, 0] > 200 and out[3, 3, 1] < 60


def test_bad_files(tmp_path):
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InvalidImageError):
        load_image(text)
    truncated = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))[:200]
    with pytest.raises(InvalidImageError):
        load_image(truncated)
    with pytest.raises(InvalidImageError, match="No image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError):
        load_image(12345)


def test_too_many_pixels():
    big = png_bytes(Image.new("1", (5000, 5000)))  # tiny file, 25 MP
    with pytest.raises(ImageTooLargeError):
        load_image(big, max_pixels=1_000_000)


def test_resize_pads_to_square_and_tensor_range():
    wide = Image.new("RGB", (40, 20), (0, 0, 0))
    a = resize(wide, 16)
    assert a.shape == (16, 16, 3) and a[0, 8].tolist() == [255, 255, 255] and a[8, 8].tolist() == [0, 0, 0]
    t = to_tensor(a)
    assert t.shape == (1, 3, 16, 16) and 0.0 <= t.min() and t.max() <= 1.0
