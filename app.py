"""crossgen demo: Text → Image, Image → Text and Edit in three tabs. UI only; the models live in `crossgen`."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no outbound calls from the demo

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

import crossgen  # noqa: E402
from crossgen.data.records import split_config  # noqa: E402

ASSETS = Path(__file__).resolve().parent / "assets"
DISPLAY_SIZE = 192  # the models draw 64x64; the gallery shows them larger
EXAMPLE_PROMPTS = ["red apple", "dog", "smiling cat face", "thumbs up", "pizza", "racing car", "full moon",
                   # combinations no emoji draws: the generator takes the object from a drawing, the colour from the word
                   "blue apple", "purple dog face", "green cat face",
                   # words the word vectors learned from WordNet glosses rather than from emoji names
                   "sleepy puppy", "crimson automobile", "golden crown", "feline face"]
INTERPOLATION_EXAMPLES = [["red apple", "green apple"], ["puppy", "kitten"], ["full moon", "sun"], ["red heart", "pizza"]]
ROUND_TRIP_BEAM = 3  # beam width used to read back generated images
DOWNLOAD_DIR = Path(tempfile.gettempdir()) / "crossgen-downloads"
DOWNLOAD_KEEP_S = 3600  # GIFs and transparent PNGs older than this are deleted when new ones are written
WORD_COLORS = {"known": "#22c55e", "unknown": "#ef4444"}
MAX_UPLOAD = "10mb"
SEED_PLACEHOLDER = "set once images are drawn"  # an empty seed field, not a 0 that was never used
NOT_AN_EMOJI = ("⚠️ **This doesn't look like an emoji.** crossgen has only learned emoji drawings; its best guesses "
                "are below, marked as unsure.")
CHART_LABEL = "n-best captions (chance of being the exact name)"
EDIT_KINDS = {"colour": "a new colour, the rest kept", "tone": "a new skin tone, the rest kept",
              "caption": "a new caption, drawn whole"}
EDIT_EXAMPLES = [["twemoji_red_apple.png", "blue"], ["twemoji_red_heart.png", "green"], ["twemoji_thumbs_up.png", "dark skin tone"],
                 ["twemoji_person_raising_hand_medium_skin_tone.png", "light skin tone"]]  # in assets/examples
KEEP_DRAWING = "the dropped drawing"  # the Edit tab's artist choice that keeps the drawing and changes what the words say
ARTISTS = [spec["artwork"] for spec in split_config()["styles"].values() if spec["split"] == "train"]  # the VAE draws from
ELSE = "something else"  # the chart's rest: the chance that the name is none of the captions shown
UNSURE = " (unsure)"  # marks a reading of an image that does not look like an emoji, in the caption and the chart
CHART_NOTE = ("The percentages are one distribution: with \"something else\" they add up to 100 %. Each is the chance "
              "that the caption is exactly the image's name, calibrated on held-out emoji drawings: of the captions "
              "shown at 70 %, about 7 in 10 were right there. It means little for images that are not emoji.")


def pipeline() -> crossgen.Pipeline:
    """The shared pipeline; a clear error in the UI when no checkpoints are installed."""
    try:
        return crossgen.load()
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None


def status_message() -> str:
    try:
        p = crossgen.load()
    except crossgen.CrossgenError as e:
        return f"⚠️ **The models are not available.** {e}"
    return f"Models loaded on **{p.device}**."


def credits() -> str:
    """The artwork the models learned from and were tested on, each with its licence, read from the data split
    (crossgen/data/split.json), so that the credits name every artist the weights came from."""
    styles = split_config()["styles"].values()

    def listed(split: str) -> str:
        return "; ".join(f"{s['artwork']}, {s['licence']}" for s in styles if s["split"] == split)

    return (f"Trained on emoji artwork from npm packages (artwork, licence): {listed('train')}. Tested on "
            f"{listed('test')}: an artist never seen in training. Names and keywords: Unicode CLDR via OpenMoji and "
            "emoji-datasource. Word vectors also read WordNet 3.0 glosses (Princeton).")


def about_markdown() -> str:
    """The evaluation figures of the installed checkpoints (checkpoints/metrics.json) and the data credits."""
    m = crossgen.checkpoint_info()
    if not m.get("captioning"):
        return "No evaluation figures for these checkpoints yet (`python -m crossgen.evaluate`).\n\n" + credits()
    cap = m["captioning"]
    lines = [f"Measured on {cap['images']:,} held-out **{m.get('styles', m['split'])}** images, an artist the models "
             f"never saw ({m['date'][:10]}, `python -m crossgen.evaluate`).", "",
             "| Image → Text | exact name | in 3-best | BLEU-4 | CIDEr |", "| --- | --- | --- | --- | --- |"]
    for name, row in cap["methods"].items():
        lines.append(f"| {name} | {row['exact_top1']:.1%} | {row['exact_nbest']:.1%} | {row['bleu4']:.3f} | {row['cider']:.2f} |")
    t2i = m.get("text_to_image", {})
    if "methods" in t2i:
        lines += ["", f"| Text → Image ({t2i['prompts']} prompts) | evaluator top-1 | top-5 | FID | per-category FID |",
                  "| --- | --- | --- | --- | --- |"]
        for name, row in t2i["methods"].items():
            fid, intra = ("–" if row.get(k) is None else f"{row[k]:.1f}" for k in ("fid", "intra_fid"))
            lines.append(f"| {name} | {row['top1']:.1%} | {row['top5']:.1%} | {fid} | {intra} |")
    conf = m.get("confidence") or {}
    if "ood" in conf:
        lines += ["", f"Is it an emoji? {conf['accepted']:.1%} of these images pass the out-of-domain check; against "
                  "images that are not emoji (the test part of the out-of-domain set):", "",
                  "| not an emoji | AUROC | passed at 95 % of emoji passing | passed at the shipped threshold |",
                  "| --- | --- | --- | --- |"]
        for kind, row in {**conf["ood"], "mean of photo, screenshot, text, noise": conf["ood_mean"]}.items():
            lines.append(f"| {kind} | {row['auroc']:.3f} | {row['fpr95']:.1%} | {row['accepted']:.1%} |")
        lines += ["", f"Calibration error of the best caption's probability (15 bins): {conf['ece_before']:.3f} before, "
                  f"{conf['ece_after']:.3f} after calibration."]
    return "\n".join(lines + ["", credits()])


# handlers

def text_to_image(prompt: str, n: int = 4, seed: float = -1,
                  temperature: float = 1.0) -> tuple[list[tuple[Image.Image, str]], int, str, list[str]]:
    """Draw emoji-style images (64 px, shown at 192 px) of an English text prompt with the conditional VAE.

    Args:
        prompt: a few English words describing an emoji, e.g. "red apple" or "smiling cat face".
        n: number of images to draw, 1 to 16.
        seed: random seed for the same images again; -1 (or any negative number) picks a random seed.
        temperature: spread of the latent samples, 0 to 2; 0 draws the most typical image, 1 the model's own spread.

    Returns:
        the generated images (PNG), each captioned with the training drawing it was drawn from: its name, artwork
        and licence (several artworks ask for this attribution)
        the seed that was used
        Markdown naming the prompt words the model used and the unknown words it ignored, with suggestions, and the
        training drawings the images were drawn from (the object comes from them) with their artwork and licence
        the images as PNGs with a transparent background, at 64 and 256 px
    """
    p = pipeline()
    try:
        g = p.generate(prompt, n=int(n), seed=None if seed is None or seed < 0 else int(seed), temperature=float(temperature))
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    words = f"Words used: **{' '.join(g.prompt.known)}**"
    if g.prompt.unknown:
        hints = "; ".join(f"*{w}* → {', '.join(s) or 'no close word'}" for w, s in g.prompt.suggestions.items())
        words += f"  \nIgnored (unknown): {hints}"
    gallery = [(display(im), credit_line(c)) for im, c in zip(g.images, g.credits)]
    return gallery, g.seed, words + drawn_from(g.credits), transparent_pngs(g.images, f"{slug(prompt)}-seed{g.seed}")


def credit_line(credit: crossgen.Credit | None) -> str:
    """The caption under a drawn image: the training drawing it came from, its artwork and licence."""
    return "" if credit is None else f"from “{credit.name}” · {credit.artwork}, {credit.licence}"


def drawn_from(credits: list[crossgen.Credit | None]) -> str:
    """Markdown naming the training drawings the images were drawn from (their object comes from these; the words
    give colour and tone), with each artwork's licence, in order of first use."""
    seen = list(dict.fromkeys((c.name, c.artwork, c.licence) for c in credits if c is not None))
    if not seen:
        return ""
    names = list(dict.fromkeys(name for name, _, _ in seen))
    artworks = "; ".join(f"{a}, {lic}" for a, lic in dict.fromkeys((a, lic) for _, a, lic in seen))
    return f"  \nDrawn from the training drawings of: **{', '.join(names)}** — artwork: {artworks}"


def download_folder() -> Path:
    """A fresh folder for files to download (GIFs, transparent PNGs); folders older than an hour are removed."""
    DOWNLOAD_DIR.mkdir(parents=True, exist_ok=True)
    for old in DOWNLOAD_DIR.iterdir():
        with contextlib.suppress(OSError):  # a concurrent request may be removing it already
            if time.time() - old.stat().st_mtime > DOWNLOAD_KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
    folder = DOWNLOAD_DIR / uuid.uuid4().hex
    folder.mkdir()
    return folder


def transparent_pngs(images: list[Image.Image], stem: str) -> list[str]:
    """Each 64 px drawing as RGBA PNGs with its white background made transparent (`crossgen.transparent`), at
    every size of crossgen.imaging.matte.SIZES: <stem>-<i>-<size>px.png."""
    folder, stem = download_folder(), re.sub(r"[^\w.-]", "", stem)
    paths = []
    for i, im in enumerate(images, 1):
        rgba = crossgen.transparent(im)  # the matte once, then each size
        for size in crossgen.imaging.matte.SIZES:
            path = folder / f"{stem}-{i}-{size}px.png"
            crossgen.imaging.matte.scaled(rgba, size).save(path)
            paths.append(str(path))
    return paths


def uploaded_path(image: dict | str | None) -> Path:
    """The uploaded file's path (the event skips Gradio's own decoding so crossgen's loader can explain
    what is wrong with a bad file). Only files inside Gradio's upload folder are read."""
    if not image:
        raise gr.Error("Drop an image first (PNG, JPEG, GIF, WebP).")
    path = Path(image["path"] if isinstance(image, dict) else image).resolve()
    if not path.is_relative_to(Path(get_upload_folder()).resolve()):
        raise gr.Error("Upload the image through the app.")
    return path


def image_to_text(image: dict | str | None, beam: int = 3) -> tuple[str, dict[str, float], str, dict]:
    """Caption an image (an emoji or emoji-like drawing) in a few English words with the ResNet18 + LSTM captioner.

    Args:
        image: the image to caption (PNG, JPEG, GIF or WebP, at most 10 MB); over MCP an http(s) or data: URL.
        beam: beam width of the caption search, 1 (greedy) to 10; up to 5 captions are ranked.

    Returns:
        the best caption, marked " (unsure)" when the image does not look like an emoji
        the n-best captions, each with the calibrated chance that it is exactly the image's name, and "something
        else" with the rest (they add up to 1)
        a notice when the image does not look like an emoji ("" when it does)
        the domain check: {"in_domain": bool, "score": float, "threshold": float, "named_by": str}
    """
    image = uploaded_path(image)
    p = pipeline()
    try:
        r = p.read(image, beam=int(beam), n_best=min(int(beam), 5))
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    chart = nbest_label(r.captions, r.probabilities)
    domain = p.postprocess.confidence.domain
    check = {"in_domain": r.in_domain, "score": r.domain_score, "named_by": r.named_by,
             "threshold": domain.threshold if domain is not None else None}
    best = r.captions[0][0] or "(no words)"
    if r.in_domain:
        return best, chart, "", check
    # outside the emoji world: the same captions, the caption's and the chart's guesses marked as unsure, the notice
    return best + UNSURE, {text if text == ELSE else text + UNSURE: p for text, p in chart.items()}, NOT_AN_EMOJI, check


def nbest_label(captions: list[tuple[str, float]], probabilities: list[float]) -> dict[str, float]:
    """n-best captions and their probabilities (one distribution, `Pipeline.read`) -> {caption: probability}
    for gr.Label, with "something else" holding the rest, so the chart adds up to 100 %."""
    chart = {text or "(no words)": p for (text, _), p in zip(captions, probabilities)}
    return {**chart, ELSE: max(0.0, 1.0 - sum(chart.values()))}


def read_name(image: dict | str | None) -> tuple[str, str]:
    """Edit: the name the captioner reads in a dropped image (editable before drawing), or the notice for an image
    that does not look like an emoji."""
    if not image:
        return "", ""
    try:
        r = pipeline().read(uploaded_path(image), beam=3, n_best=1)
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    return r.captions[0][0], "" if r.in_domain else NOT_AN_EMOJI


def edit_preview(name: str | None, words: str | None) -> str:
    """Edit: the caption the words make of the read name, shown before drawing."""
    if not name or not words or not words.strip():
        return ""
    caption, kind = crossgen.edited_caption(name, words)
    return f"Will draw: **{caption}** ({EDIT_KINDS[kind]})"


def edit_emoji(image: dict | str | None, words: str, name: str | None = None,
               artist: str | None = None) -> tuple[Image.Image, str, list[str]]:
    """Edit an emoji with words: its colour ("blue"), its skin tone ("dark skin tone") or a whole new caption.

    The VAE's encoder reads the drawing under its name and the decoder draws it under the name with the words
    applied; a colour or skin-tone edit keeps every pixel the words do not speak of.

    Args:
        image: the emoji to edit (PNG, JPEG, GIF or WebP, at most 10 MB); over MCP an http(s) or data: URL.
        words: what to change: a colour ("blue"), a skin tone ("dark skin tone") or a new caption ("green heart").
        name: the emoji's name, when the one the captioner reads is wrong ("" or omitted: read it).
        artist: draw it anew in one training artist's style, e.g. "OpenMoji" ("" or omitted: keep the dropped drawing).

    Returns:
        the edited drawing (PNG, 64 px shown at 192 px)
        Markdown saying what was read and what was drawn
        the edited drawing as PNGs with a transparent background, at 64 and 256 px
    """
    path = uploaded_path(image)
    try:
        e = pipeline().edit(path, words, name=name or None, artist=None if artist in (None, "", KEEP_DRAWING) else artist)
    except crossgen.CrossgenError as err:
        raise gr.Error(str(err)) from None
    said = f"Read as **{e.read}**, drawn as **{e.caption}** ({EDIT_KINDS[e.kind]})"
    if e.credit is not None:
        said = f"Read as **{e.read}**, drawn anew as **{e.caption}** {credit_line(e.credit)}"
    return display(e.image), said, transparent_pngs([e.image], f"{slug(e.caption)}-edit")


def seed_arg(seed: float | None) -> int | None:
    return None if seed is None or seed < 0 else int(seed)


def display(image: Image.Image) -> Image.Image:
    return image.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.LANCZOS)


def prompt_words(prompt: str | None) -> tuple[list[tuple[str, str | None]], dict[str, list[str]]]:
    """Check which words of a text prompt the text-to-image model knows, with close known words for the others.

    Args:
        prompt: the text prompt to check, e.g. "crimson automobile".

    Returns:
        the prompt's words, each with the label "known" or "unknown" (spaces between them unlabelled)
        each unknown word with the closest known words to use instead
    """
    if not prompt or not prompt.strip():
        return [], {}
    try:
        analysis = pipeline().prompt_words(prompt)
    except (crossgen.CrossgenError, gr.Error):  # empty, too long, no models: Draw explains it
        return [], {}
    spaced = [part for word in analysis.words for part in ((word[0], word[1]), (" ", None))][:-1]
    return spaced, analysis.suggestions


SUGGESTION_FIELDS = [gr.Textbox(render=False), gr.Textbox(render=False)]  # (unknown word, suggestion)


def suggestion_pairs(suggestions: dict | None) -> list[list[str]]:
    return [[word, s] for word, options in (suggestions or {}).items() for s in options]


def suggestion_buttons(suggestions: dict | None):
    """One clickable sample per (unknown word, suggestion), shown as "word → suggestion"."""
    samples = suggestion_pairs(suggestions)
    return gr.Dataset(samples=samples, components=SUGGESTION_FIELDS, visible=bool(samples),
                      sample_labels=[f"{w} → {s}" for w, s in samples])


def use_suggestion(index: int | None, suggestions: dict | None, prompt: str) -> str:
    """The prompt with the clicked suggestion's unknown word replaced."""
    pairs = suggestion_pairs(suggestions)
    if index is None or not 0 <= int(index) < len(pairs):
        return prompt
    word, replacement = pairs[int(index)]
    return crossgen.replace_word(prompt or "", word, replacement)


def caption_generated(gallery: list | None) -> tuple[list[tuple[Image.Image | str, str]], str]:
    """Round trip: caption each image of a gallery (e.g. the images text_to_image drew) with a beam of 3.

    Args:
        gallery: the images to read back, as a gallery.

    Returns:
        the same images, each with the caption read from it
        a Markdown summary listing the captions in order
    """
    if not gallery:
        raise gr.Error("Draw some images first, then read them back.")
    images = [item[0] if isinstance(item, (tuple, list)) else item for item in gallery]
    try:
        captions = pipeline().caption_images(images, beam=ROUND_TRIP_BEAM)
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    texts = [text or "(no words)" for text, _ in captions]
    summary = "**The captioner reads:** " + " · ".join(f"{i}. *{t}*" for i, t in enumerate(texts, 1))
    return list(zip(images, texts)), summary


def draw_from_caption(caption_text: str | None, n: int = 4, seed: float = -1,
                      temperature: float = 1.0) -> tuple[list[tuple[Image.Image, str]], int, str, list[str]]:
    """Round trip: draw images from a caption (e.g. the best caption image_to_text gave), as text_to_image does.

    Args:
        caption_text: the caption to draw, e.g. "dog face".
        n: number of images to draw, 1 to 16.
        seed: random seed for the same images again; -1 (or any negative number) picks a random seed.
        temperature: spread of the latent samples, 0 to 2; 0 draws the most typical image, 1 the model's own spread.

    Returns:
        the generated images (PNG), each captioned with the training drawing it was drawn from
        the seed that was used
        Markdown naming the caption words the model used and the unknown words it ignored
        the images as PNGs with a transparent background, at 64 and 256 px
    """
    caption_text = (caption_text or "").removesuffix(UNSURE)  # the mark of an unsure reading is not a word to draw
    if not caption_text.strip():
        raise gr.Error("Caption an image first: the drawing starts from its best caption.")
    return text_to_image(caption_text, n, seed, temperature)


def slug(text: str) -> str:
    return "-".join(crossgen.tokenize(text))[:40] or "prompt"


def gif_path(prompt_a: str, prompt_b: str, seed: int) -> Path:
    """A fresh file for an interpolation GIF (named after the prompts and seed)."""
    return download_folder() / re.sub(r"[^\w.-]", "", f"{slug(prompt_a)}-to-{slug(prompt_b)}-seed{seed}.gif")


def interpolate(prompt_a: str, prompt_b: str, k: int = 8, seed: float = -1,
                temperature: float = 1.0) -> tuple[list[tuple[Image.Image, str]], str, int]:
    """Morph between two text prompts: k images drawn along the way from the first prompt to the second.

    Args:
        prompt_a: the start prompt, e.g. "red apple".
        prompt_b: the end prompt, e.g. "green apple".
        k: number of frames, 2 to 16, the first drawn from prompt_a and the last from prompt_b.
        seed: seed of the latent path; -1 (or any negative number) picks a random seed.
        temperature: spread of the latent samples, 0 to 2; 0 draws the most typical images.

    Returns:
        the frames in order, each captioned with its position t between 0 (prompt_a) and 1 (prompt_b)
        the frames as an animated GIF file
        the seed of the latent path that was used
    """
    try:
        walk = pipeline().interpolate(prompt_a, prompt_b, k=int(k), seed=seed_arg(seed), temperature=float(temperature))
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    frames = [display(im) for im in walk.images]
    gif = crossgen.write_gif(frames, gif_path(prompt_a, prompt_b, walk.seed))
    return [(im, f"t = {t:.2f}") for im, t in zip(frames, walk.steps)], str(gif), walk.seed


# layout

with gr.Blocks(title="crossgen: text ↔ image", analytics_enabled=False) as demo:
    gr.Markdown("# crossgen\nType a prompt to draw emoji-style images, or drop an image to caption it.")
    status = gr.Markdown()
    with gr.Accordion("About these models", open=False):
        about = gr.Markdown()
    with gr.Tab("Text → Image"):
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", placeholder="red apple", max_length=crossgen.preprocess.MAX_PROMPT_CHARS)
                word_marks = gr.HighlightedText(label="Words the model knows", color_map=WORD_COLORS, show_legend=True,
                                                show_inline_category=False)
                suggestions = gr.JSON(label="Suggestions", visible=False)
                suggestion_set = gr.Dataset(label="Did you mean… (click to replace the word)", components=SUGGESTION_FIELDS,
                                            samples=[], type="index", visible=False)
                with gr.Row():
                    n_images = gr.Slider(1, 16, value=4, step=1, precision=0, label="Number of images")
                    seed = gr.Number(-1, label="Seed (-1 = random)", precision=0)
                    temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
                draw = gr.Button("Draw", variant="primary")
                gr.Examples(EXAMPLE_PROMPTS, inputs=prompt, examples_per_page=len(EXAMPLE_PROMPTS))
            with gr.Column():
                gallery = gr.Gallery(label="Generated images", columns=4, height="auto", object_fit="contain", format="png",
                                     interactive=False)
                seed_used = gr.Number(label="Seed used", precision=0, interactive=False, placeholder=SEED_PLACEHOLDER)
                pngs = gr.File(label="Transparent PNGs (64 and 256 px)", file_count="multiple", interactive=False)
                words = gr.Markdown(label="Hints")  # the words read and the drawings the images came from
                read_back = gr.Button("🔁 Read them back")
                read_back_summary = gr.Markdown(label="Read back")
        with gr.Accordion("Interpolate between two prompts", open=True):
            gr.Markdown("The two prompts' conditions and one latent path from the seed are both walked; the seed and "
                        "temperature above are used (the first frame is the first image **Draw** gives for the "
                        "start words with that seed).")
            with gr.Row():
                start_words = gr.Textbox(label="Start words", value="red apple", max_length=crossgen.preprocess.MAX_PROMPT_CHARS)
                end_words = gr.Textbox(label="End words", value="green apple", max_length=crossgen.preprocess.MAX_PROMPT_CHARS)
                frames = gr.Slider(2, 16, value=8, step=1, precision=0, label="Frames (k)")
            interpolate_btn = gr.Button("Interpolate")
            strip = gr.Gallery(label="Interpolation strip", columns=8, height=240, object_fit="contain", format="png",
                               interactive=False)
            with gr.Row():
                strip_gif = gr.File(label="Animated GIF", interactive=False)
                strip_seed = gr.Number(label="Latent path seed", precision=0, interactive=False, placeholder=SEED_PLACEHOLDER)
            gr.Examples(INTERPOLATION_EXAMPLES, inputs=[start_words, end_words])
    with gr.Tab("Image → Text"):
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=256)
                beam = gr.Slider(1, 10, value=3, step=1, precision=0, label="Beam width (1 = greedy)")
                caption_btn = gr.Button("Caption", variant="primary")
                examples = sorted(str(p) for p in ASSETS.glob("examples/*.png"))
                if examples:
                    gr.Examples(examples, inputs=image)
            with gr.Column():
                not_emoji = gr.Markdown(label="Notice", elem_id="not-an-emoji")
                caption = gr.Textbox(label="Caption", interactive=False, elem_id="caption")
                nbest = gr.Label(label=CHART_LABEL, num_top_classes=6)  # up to 5 captions and "something else"
                gr.Markdown(CHART_NOTE)
                with gr.Accordion("Domain check", open=False):
                    domain_check = gr.JSON(label="Is it an emoji? (out-of-domain check on the image features)")
                back_btn = gr.Button("🔁 Back to pictures")
                gr.Markdown("Draws the best caption with the number of images, seed and temperature of **Text → Image**.")
                back_gallery = gr.Gallery(label="Drawn from the caption", columns=4, height="auto", object_fit="contain",
                                          format="png", interactive=False)
                back_seed = gr.Number(label="Seed of these pictures", precision=0, interactive=False,
                                      placeholder=SEED_PLACEHOLDER)
                back_pngs = gr.File(label="Transparent PNGs (64 and 256 px)", file_count="multiple", interactive=False)
                back_words = gr.Markdown(label="Hints")

    with gr.Tab("Edit"):
        with gr.Row():
            with gr.Column():
                edit_image = gr.Image(label="Emoji to edit", type="filepath", sources=["upload", "clipboard"], height=256)
                edit_name = gr.Textbox(label="Read as (fix it if it is wrong)", max_length=crossgen.preprocess.MAX_PROMPT_CHARS)
                edit_words = gr.Textbox(label="Words", placeholder="blue · dark skin tone · green heart",
                                        max_length=crossgen.preprocess.MAX_PROMPT_CHARS)
                edit_artist = gr.Dropdown([KEEP_DRAWING, *ARTISTS], value=KEEP_DRAWING, label="Drawn by")
                edit_plan = gr.Markdown(label="Will draw")
                edit_btn = gr.Button("Edit", variant="primary")
                gr.Examples([[str(ASSETS / "examples" / f), w] for f, w in EDIT_EXAMPLES], inputs=[edit_image, edit_words])
            with gr.Column():
                edit_notice = gr.Markdown(label="Notice")
                edited = gr.Image(label="Edited", type="pil", format="png", interactive=False, height=256)
                edit_said = gr.Markdown(label="What was drawn")
                edit_pngs = gr.File(label="Transparent PNGs (64 and 256 px)", file_count="multiple", interactive=False)

    # wiring
    demo.load(status_message, None, status, api_name=False)
    demo.load(about_markdown, None, about, api_name=False)
    drawn = [gallery, seed_used, words, pngs]
    draw.click(text_to_image, [prompt, n_images, seed, temperature], drawn, api_name="text_to_image")
    prompt.submit(text_to_image, [prompt, n_images, seed, temperature], drawn, api_name=False)
    caption_btn.click(image_to_text, [image, beam], [caption, nbest, not_emoji, domain_check], api_name="image_to_text",
                      preprocess=False)
    # issue 7: hints while typing, round trips, interpolation (each with its own endpoint)
    quiet = dict(show_progress="hidden", api_name=False)
    prompt.change(prompt_words, prompt, [word_marks, suggestions], api_name="prompt_words", show_progress="hidden",
                  trigger_mode="always_last").then(suggestion_buttons, suggestions, suggestion_set, **quiet)
    suggestion_set.click(use_suggestion, [suggestion_set, suggestions, prompt], prompt, **quiet)
    for event in (draw.click, prompt.submit):
        event(lambda: "", None, read_back_summary, **quiet)
    read_back.click(caption_generated, gallery, [gallery, read_back_summary], api_name="caption_generated")
    back_btn.click(draw_from_caption, [caption, n_images, seed, temperature], [back_gallery, back_seed, back_words, back_pngs],
                   api_name="draw_from_caption")
    edit_image.change(read_name, edit_image, [edit_name, edit_notice], preprocess=False, **quiet)
    for field in (edit_name, edit_words):
        field.change(edit_preview, [edit_name, edit_words], edit_plan, **quiet)
    edit_btn.click(edit_emoji, [edit_image, edit_words, edit_name, edit_artist], [edited, edit_said, edit_pngs], api_name="edit_emoji",
                   preprocess=False)
    interpolate_btn.click(interpolate, [start_words, end_words, frames, seed, temperature], [strip, strip_gif, strip_seed],
                          api_name="interpolate")

demo.queue(default_concurrency_limit=int(os.environ.get("CROSSGEN_CONCURRENCY", "16")), max_size=64)  # concurrent calls meet in the micro-batcher

if __name__ == "__main__":
    print(status_message())  # load the models before the first request
    # GRADIO_MCP_SERVER=True also serves the named endpoints as MCP tools at /gradio_api/mcp (launch() reads it)
    demo.launch(max_file_size=MAX_UPLOAD)
