"""Out-of-domain images, built offline from what ships in installed packages.

Sources (each image is one record with its `source` kind and a `split`):
- photo: scikit-image's and scikit-learn's sample photos and textures, matplotlib's Grace Hopper, gradio's
  sample photos, the LFW faces subset; each photo whole (the models pad it to a square with white, as they do
  any upload), its centre square and random crops, square or wide;
- screenshot: plots drawn with matplotlib, networkx's graph drawings, gradio's screen recording, and page or
  app layouts (bars, text lines, buttons; square or 16:9) drawn with Pillow;
- text: words and lines (square blocks or strips) rendered with Pillow in the fonts matplotlib ships, and
  scikit-image's scans of text;
- noise: Gaussian, uniform, salt-and-pepper and smoothed noise, flat colours, linear and radial gradients;
- drawing: pictures that are drawings but not emoji (scikit-image's, matplotlib's and gradio's logos, the
  horse silhouette, matplotlib's toolbar icons, a clip-art gift box, gradio's avatar). Reported on their own row: whether they count
  as in-domain is a policy, not a target.

Split by source image: a photo and all of its crops, a font, a rendering seed fall into one split only, so
the test part shares no source with the validation part that chooses the score and its threshold. The train
part (outliers shown to the feature extractor, `crossgen/train/features.py`) has sources of its own, drawn after
the other two so that they stay as they were: the few package photos the other parts leave (gradio's second
cheetah, scikit-image's clock, matplotlib's MRI slice and its two elevation maps shaded as terrain), photo-like
scenes rendered from 1/f noise, text and pages in the KaTeX fonts gradio ships, and plots and noise of other
seeds.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..errors import DataError, DataNotFoundError

KINDS = ("photo", "screenshot", "text", "noise", "drawing")
TARGET_KINDS = ("photo", "screenshot", "text", "noise")  # the targets; drawings are reported apart
SIZE = 128  # saved size; the models read 64 px
WORDS = ("the quick brown fox jumps over lazy dog hello world crossgen report figure table page menu search "
         "login settings account profile price total invoice meeting agenda notes chapter section summary "
         "results method data model train test error warning submit cancel next back home about contact").split()


def _save(img: Image.Image, out: Path, split: str, kind: str, source: str, i: int, rows: list[dict]) -> None:
    rel = Path(split) / kind / f"{source}_{i:03d}.png"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(out / rel)
    rows.append({"file": str(rel), "split": split, "kind": kind, "source": source})


def _crops(img: Image.Image, n: int, rng: random.Random) -> list[Image.Image]:
    """The whole photo as it is (the models pad it to a square with white, as they do any upload), its centre
    square, and n-2 random crops of 30-100 % of its short side, square or up to 2:1."""
    w, h = img.size
    s = min(w, h)
    whole = img.copy()
    whole.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    out = [img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))]
    for _ in range(n - 2):
        c = int(s * rng.uniform(0.3, 1.0))
        x, y = rng.randint(0, w - c), rng.randint(0, h - c)
        cw = min(w - x, int(c * rng.choice([1.0, 1.0, 1.5, 2.0])))  # some crops wider than tall
        crop = img.crop((x, y, x + cw, y + c))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return [whole] + [c.resize((SIZE, SIZE * c.height // c.width), Image.Resampling.LANCZOS) for c in out]


def _package_photos() -> dict[str, Image.Image]:
    """Photos and textures shipped inside scikit-image, scikit-learn and matplotlib (no download)."""
    import matplotlib
    import sklearn
    import skimage.data

    skd = Path(skimage.data.__file__).parent
    names = ["astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins", "grass", "gravel", "ihc",
             "microaneurysms", "moon", "motorcycle_left", "motorcycle_right", "rocket", "retina", "hubble_deep_field"]
    photos = {}
    for name in names:
        path = next(skd.glob(f"{name}.*"))
        photos[name] = Image.open(path).convert("RGB")
    for name in ("china", "flower"):
        photos[name] = Image.open(Path(sklearn.__file__).parent / "datasets" / "images" / f"{name}.jpg").convert("RGB")
    photos["grace_hopper"] = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    for path in sorted(_gradio_images().glob("*")):
        if path.stem in GRADIO_PHOTOS:
            photos[f"gradio_{path.stem}"] = Image.open(path).convert("RGB")
    return photos


GRADIO_PHOTOS = ("bus", "cheetah", "cheetah1", "groot", "lion", "tower")
GRADIO_DRAWINGS = ("avatar", "hf-logo_transpng", "logo")


def _gradio_images() -> Path:
    """The sample images inside the gradio package (a dependency of the app)."""
    import gradio

    return Path(gradio.__file__).parent / "media_assets" / "images"


def _fonts() -> list[Path]:
    import matplotlib

    return sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf"))


def _colour(rng: random.Random, dark: bool | None = None) -> tuple[int, int, int]:
    if dark is None:
        return tuple(rng.randint(0, 255) for _ in range(3))
    lo, hi = (0, 110) if dark else (170, 255)
    return tuple(rng.randint(lo, hi) for _ in range(3))


def _text_image(font: Path, rng: random.Random) -> Image.Image:
    """A few words or lines of text, in one font, on a light or dark ground."""
    r = rng.random()  # half on white, like a document; a quarter each on a light and on a dark colour
    dark_ground = r >= 0.75
    wide = rng.choice([1, 1, 2, 4])  # a square block of text, or a strip of a line or two
    img = Image.new("RGB", (SIZE * 2 * wide, SIZE * 2), (255, 255, 255) if r < 0.5 else _colour(rng, dark=dark_ground))
    draw = ImageDraw.Draw(img)
    size = rng.choice([14, 20, 28, 40, 60])
    f = ImageFont.truetype(str(font), size)
    y = rng.randint(0, 20)
    for _ in range(rng.randint(1, 8)):
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        draw.text((rng.randint(0, 20), y), line, fill=_colour(rng, dark=not dark_ground), font=f)
        y += int(size * rng.uniform(1.1, 1.6))
        if y > SIZE * 2:
            break
    return img.resize((SIZE * wide, SIZE), Image.Resampling.LANCZOS)


def _page_image(font: Path, rng: random.Random) -> Image.Image:
    """A page or app screenshot: a header bar, a sidebar, text lines, buttons and boxes."""
    W = SIZE * 4
    H = rng.choice([W, W * 9 // 16])  # square, or a 16:9 screen
    img = Image.new("RGB", (W, H), (255, 255, 255) if rng.random() < 0.6 else _colour(rng, dark=False))
    draw = ImageDraw.Draw(img)
    f = ImageFont.truetype(str(font), rng.choice([12, 16, 20]))
    header = rng.randint(30, 80)
    draw.rectangle((0, 0, W, header), fill=_colour(rng))
    draw.text((10, header // 3), " ".join(rng.choice(WORDS) for _ in range(3)), fill=(255, 255, 255), font=f)
    left = rng.choice([0, rng.randint(60, 140)])
    if left:
        draw.rectangle((0, header, left, H), fill=_colour(rng, dark=rng.random() < 0.3))
    y = header + 15
    while y < H - 20:
        r = rng.random()
        if r < 0.6:
            draw.text((left + 15, y), " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))), fill=(20, 20, 20), font=f)
            y += 24
        elif r < 0.8:
            bw = rng.randint(60, 160)
            draw.rounded_rectangle((left + 15, y, left + 15 + bw, y + 30), radius=6, fill=_colour(rng))
            draw.text((left + 25, y + 6), rng.choice(WORDS), fill=(255, 255, 255), font=f)
            y += 45
        else:
            draw.rectangle((left + 15, y, W - 15, y + rng.randint(40, 120)), outline=(120, 120, 120), width=2)
            y += 130
    return img.resize((SIZE, SIZE * H // W), Image.Resampling.LANCZOS)


def _plot_image(seed: int) -> Image.Image:
    """A matplotlib chart with random data: line, bar, scatter, histogram, pie or heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=((3, 3), (4, 3), (5, 3))[seed // 12 % 3], dpi=64)  # square or wide
    kind = ["line", "bar", "scatter", "hist", "pie", "imshow"][seed // 2 % 6]  # both splits (seed parity) get each
    if kind == "line":
        for _ in range(rng.integers(1, 4)):
            ax.plot(np.cumsum(rng.normal(size=50)))
    elif kind == "bar":
        ax.bar(range(8), rng.uniform(1, 10, 8))
    elif kind == "scatter":
        ax.scatter(rng.normal(size=80), rng.normal(size=80), c=rng.uniform(size=80))
    elif kind == "hist":
        ax.hist(rng.normal(size=500), bins=20)
    elif kind == "pie":
        ax.pie(rng.uniform(1, 5, 5))
    else:
        ax.imshow(rng.normal(size=(12, 12)))
    ax.set_title(" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 2)))
    fig.canvas.draw()
    img = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    plt.close(fig)
    img.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    return img


def _noise_image(seed: int) -> Image.Image:
    """Noise, a flat colour or a gradient (the kind cycles with the seed)."""
    rng = np.random.default_rng(seed)
    kind = seed % 7
    if kind == 0:
        a = rng.normal(128, rng.uniform(20, 80), (SIZE, SIZE, 3))
    elif kind == 1:
        a = rng.uniform(0, 255, (SIZE, SIZE, 3))
    elif kind == 2:
        a = np.full((SIZE, SIZE, 3), rng.uniform(0, 255, 3))
        mask = rng.uniform(size=(SIZE, SIZE)) < rng.uniform(0.05, 0.3)
        a[mask] = rng.choice([0, 255], size=(int(mask.sum()), 1))
    elif kind == 3:  # smoothed noise ("clouds")
        small = rng.uniform(0, 255, (int(rng.integers(4, 16)),) * 2 + (3,)).astype(np.uint8)
        a = np.asarray(Image.fromarray(small).resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=float)
    elif kind == 4:
        a = np.full((SIZE, SIZE, 3), rng.uniform(0, 255, 3))
    elif kind == 5:
        t = np.linspace(0, 1, SIZE)
        angle = rng.uniform(0, 2 * math.pi)
        g = (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None])
        g = (g - g.min()) / (np.ptp(g) + 1e-9)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        a = c0 + g[..., None] * (c1 - c0)
    else:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
        r = np.hypot(xx - rng.uniform(), yy - rng.uniform())
        r = r / r.max()
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        a = c0 + r[..., None] * (c1 - c0)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _drawings() -> dict[str, Image.Image]:
    """Drawings that are not emoji: logos, a silhouette, toolbar icons, clip art (alpha composed on white)."""
    import matplotlib
    import skimage.data

    def on_white(img: Image.Image) -> Image.Image:
        img = img.convert("RGBA")
        ground = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(ground, img).convert("RGB")

    skd = Path(skimage.data.__file__).parent
    mpl = Path(matplotlib.get_data_path())
    out = {"skimage_logo": on_white(Image.open(skd / "logo.png")), "horse": Image.open(skd / "horse.png").convert("RGB"),
           "mpl_logo": on_white(Image.open(mpl / "sample_data" / "logo2.png")),
           "gift_box": on_white(Image.open(mpl / "sample_data" / "Minduka_Present_Blue_Pack.png"))}
    for name in GRADIO_DRAWINGS:
        out[f"gradio_{name}"] = on_white(Image.open(next(_gradio_images().glob(f"{name}.*"))))
    for path in sorted((mpl / "images").glob("*_large.png")):
        out[f"icon_{path.stem.removesuffix('_large')}"] = on_white(Image.open(path))
    return out


def _train_photos() -> dict[str, Image.Image]:
    """Package photos no other part uses: gradio's second cheetah, scikit-image's clock (motion-blurred), an MRI
    slice and two elevation maps (shaded relief in terrain colours, like aerial photos) from matplotlib."""
    import gzip

    import gradio
    import matplotlib
    import matplotlib.pyplot as plt
    import skimage.data
    from matplotlib.colors import LightSource

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    photos = {"gradio_cheetah2": Image.open(Path(gradio.__file__).parent / "test_data" / "cheetah2.jpg"),
              "clock_motion": Image.open(Path(skimage.data.__file__).parent / "clock_motion.png")}
    mri = np.frombuffer(gzip.decompress((sample / "s1045.ima.gz").read_bytes()), np.uint16).reshape(256, 256)
    photos["mri"] = Image.fromarray((mri / mri.max() * 255).astype(np.uint8))
    for name, key in (("topobathy", "topo"), ("jacksboro_fault_dem", "elevation")):
        with np.load(sample / f"{name}.npz") as z:
            dem = z[key].astype(float)
        shaded = LightSource(azdeg=315, altdeg=45).shade(dem, cmap=plt.get_cmap("gist_earth"), blend_mode="overlay")
        photos[name] = Image.fromarray((shaded[..., :3] * 255).astype(np.uint8))
    return {k: v.convert("RGB") for k, v in photos.items()}


def _scene_image(seed: int) -> Image.Image:
    """A photo-like scene: 1/f noise (the spectrum of natural images) in two to four colours, a horizon or a
    blob of another texture on it, lightly blurred."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(SIZE), np.fft.fftfreq(SIZE)))
    f[0, 0] = 1.0

    def field() -> np.ndarray:  # (SIZE, SIZE) in [0, 1]
        spec = (rng.normal(size=(SIZE, SIZE)) + 1j * rng.normal(size=(SIZE, SIZE))) / f ** rng.uniform(0.8, 1.6)
        a = np.real(np.fft.ifft2(spec))
        return (a - a.min()) / (np.ptp(a) + 1e-9)

    palette = rng.uniform(0, 255, (int(rng.integers(2, 5)), 3))
    t = field() * (len(palette) - 1)
    lo = np.floor(t).astype(int).clip(0, len(palette) - 2)
    a = palette[lo] + (t - lo)[..., None] * (palette[lo + 1] - palette[lo])  # (SIZE, SIZE, 3)
    other = rng.uniform(0, 255, 3) * (0.5 + field()[..., None])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    if rng.random() < 0.5:  # a horizon: sky above, texture below
        mask = yy < rng.uniform(0.2, 0.7) + 0.1 * (field() - 0.5)
    else:  # an object-like blob
        mask = np.hypot(xx - rng.uniform(0.3, 0.7), yy - rng.uniform(0.3, 0.7)) < rng.uniform(0.15, 0.4) + 0.15 * field()
    a = np.where(mask[..., None], other, a)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))


def _katex_fonts() -> list[Path]:
    """The KaTeX fonts gradio's front end ships (none of them is one of matplotlib's)."""
    import gradio

    return sorted((Path(gradio.__file__).parent / "templates").rglob("KaTeX_*.ttf"))


def _train_part(out: Path, rows: list[dict], seed: int, crops: int, rendered: int) -> None:
    """The train part: sources no other part has, with a random generator of its own."""
    rng = random.Random(seed + 1)
    for name, photo in sorted(_train_photos().items()):
        for j, crop in enumerate(_crops(photo, crops, rng)):
            _save(crop, out, "train", "photo", name, j, rows)
    for j in range(rendered * 2):
        _save(_scene_image(seed * 1000 + j), out, "train", "photo", f"scene{j:03d}", 0, rows)
    fonts = _katex_fonts()
    for font in fonts:
        for j in range(max(1, rendered // len(fonts) * 2)):
            _save(_text_image(font, rng), out, "train", "text", font.stem.split(".")[0], j, rows)
        for j in range(max(1, rendered // len(fonts))):
            _save(_page_image(font, rng), out, "train", "screenshot", f"page_{font.stem.split('.')[0]}", j, rows)
    for j in range(rendered * 2, rendered * 4):
        _save(_plot_image(seed * 1000 + j), out, "train", "screenshot", f"plot{j:03d}", 0, rows)
        _save(_noise_image(seed * 1000 + j), out, "train", "noise", f"noise{j:03d}", 0, rows)


def build_ood(out: str | Path, seed: int = 0, crops: int = 32, rendered: int = 120) -> dict:
    """Write the out-of-domain set to `out` (PNG files and `records.jsonl`). Every other source goes to val,
    the rest to test; the train part has sources of its own (`_train_part`). Returns the counts per split and kind."""
    try:
        import skimage  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise DataError("Building the out-of-domain set needs scikit-image and scikit-learn (their sample photos): "
                        "pip install -r requirements-dev.txt") from None
    out = Path(out)
    rng = random.Random(seed)
    rows: list[dict] = []
    for i, (name, photo) in enumerate(sorted(_package_photos().items())):
        split = "val" if i % 2 == 0 else "test"
        for j, crop in enumerate(_crops(photo, crops, rng)):
            _save(crop, out, split, "photo", name, j, rows)
    import skimage.data

    faces = skimage.data.lfw_subset()  # (200, 25, 25) greyscale faces in [0, 1]
    for j, face in enumerate(faces):
        img = Image.fromarray((face * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        _save(img, out, "val" if j < len(faces) // 2 else "test", "photo", f"lfw{j:03d}", 0, rows)  # one person each
    skd = Path(skimage.data.__file__).parent
    for i, name in enumerate(("text", "page")):  # scans of text
        scan = Image.open(skd / f"{name}.png").convert("RGB")
        for j, crop in enumerate(_crops(scan, crops, rng)):
            _save(crop, out, "val" if i == 0 else "test", "text", f"scan_{name}", j, rows)
    fonts = _fonts()
    for i, font in enumerate(fonts):
        split = "val" if i % 2 == 0 else "test"
        for j in range(max(1, rendered // len(fonts) * 2)):
            _save(_text_image(font, rng), out, split, "text", font.stem, j, rows)
        for j in range(max(1, rendered // len(fonts))):
            _save(_page_image(font, rng), out, split, "screenshot", f"page_{font.stem}", j, rows)
    screenshot = Image.open(_gradio_images() / "screenshot.gif").convert("RGB")  # a screen recording's frame
    for j, crop in enumerate(_crops(screenshot, crops, rng)):
        _save(crop, out, "val", "screenshot", "gradio_screenshot", j, rows)
    import networkx

    graphs = sorted((Path(networkx.__file__).parent / "drawing" / "tests" / "baseline").glob("*.png"))
    for i, path in enumerate(graphs):  # graph drawings from networkx's tests (networkx comes with torch)
        img = Image.open(path).convert("RGB")
        img.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
        _save(img, out, "val" if i % 2 == 0 else "test", "screenshot", f"graph_{path.stem}", 0, rows)
    for j in range(rendered * 2):
        split = "val" if j % 2 == 0 else "test"
        _save(_plot_image(seed * 1000 + j), out, split, "screenshot", f"plot{j:03d}", 0, rows)
        _save(_noise_image(seed * 1000 + j), out, split, "noise", f"noise{j:03d}", 0, rows)
    for i, (name, img) in enumerate(sorted(_drawings().items())):
        img = img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        _save(img, out, "val" if i % 2 == 0 else "test", "drawing", name, 0, rows)
    _train_part(out, rows, seed, crops, rendered)
    with open(out / "records.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["split"], {}).setdefault(r["kind"], 0)
        counts[r["split"]][r["kind"]] += 1
    return {"records": len(rows), "counts": counts}


def ensure_ood(out: str | Path) -> Path:
    """`out`, holding the out-of-domain set: built there first when absent (about 20 s)."""
    out = Path(out)
    if not (out / "records.jsonl").is_file():
        build_ood(out)
    return out


def load_ood(data: str | Path, split: str) -> tuple[list[dict], list[Image.Image]]:
    """The records of one split of a built out-of-domain set and their images."""
    data = Path(data)
    path = data / "records.jsonl"
    if not path.is_file():
        raise DataNotFoundError(f"No out-of-domain set in {data}: build it with `python -m crossgen.data ood --out {data}`.")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["split"] == split]
    return rows, [Image.open(data / r["file"]).convert("RGB") for r in rows]
