"""crossgen demo: Text → Image and Image → Text in two tabs. UI only; the models live in `crossgen`."""
from __future__ import annotations

import math
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no outbound calls from the demo

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

import crossgen  # noqa: E402

ASSETS = Path(__file__).resolve().parent / "assets"
DISPLAY_SIZE = 192  # the models draw 64x64; the gallery shows them larger
EXAMPLE_PROMPTS = ["red apple", "dog", "smiling cat face", "thumbs up", "pizza", "red heart", "racing car", "full moon"]
MAX_UPLOAD = "10mb"


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


CREDITS = (
    "Trained on emoji artwork from npm packages: Noto Emoji (Google, Apache-2.0), OpenMoji (CC-BY-SA-4.0), "
    "Fluent Emoji Flat (Microsoft, MIT), Noto Emoji v1 (Apache-2.0) and EmojiOne (CC-BY-4.0); tested on "
    "Twemoji (Twitter/X, CC-BY-4.0), an artist never seen in training. Names and keywords: Unicode CLDR via "
    "OpenMoji and emoji-datasource. Word vectors also read WordNet 3.0 glosses (Princeton)."
)


def about_markdown() -> str:
    """The evaluation figures of the installed checkpoints (checkpoints/metrics.json) and the data credits."""
    m = crossgen.checkpoint_info()
    if not m.get("captioning"):
        return "No evaluation figures for these checkpoints yet (`python -m crossgen.evaluate`).\n\n" + CREDITS
    cap = m["captioning"]
    lines = [f"Measured on {cap['images']:,} held-out **{m.get('styles', m['split'])}** images, an artist the models "
             f"never saw ({m['date'][:10]}, `python -m crossgen.evaluate`).", "",
             "| Image → Text | exact name | in 3-best | BLEU-4 | CIDEr |", "| --- | --- | --- | --- | --- |"]
    for name, row in cap["methods"].items():
        lines.append(f"| {name} | {row['exact_top1']:.1%} | {row['exact_nbest']:.1%} | {row['bleu4']:.3f} | {row['cider']:.2f} |")
    t2i = m.get("text_to_image", {})
    if "methods" in t2i:
        lines += ["", f"| Text → Image ({t2i['prompts']} prompts) | evaluator top-1 | top-5 | FID |", "| --- | --- | --- | --- |"]
        for name, row in t2i["methods"].items():
            fid = "–" if row["fid"] is None else f"{row['fid']:.1f}"
            lines.append(f"| {name} | {row['top1']:.1%} | {row['top5']:.1%} | {fid} |")
    return "\n".join(lines + ["", CREDITS])


# handlers

def text_to_image(prompt: str, n: float = 4, seed: float = -1, temperature: float = 1.0):
    """Prompt → gallery of generated images, the seed used, and which words were understood."""
    p = pipeline()
    try:
        g = p.generate(prompt, n=int(n), seed=None if seed is None or seed < 0 else int(seed), temperature=float(temperature))
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    images = [im.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.LANCZOS) for im in g.images]
    words = f"Words used: **{' '.join(g.prompt.known)}**"
    if g.prompt.unknown:
        hints = "; ".join(f"*{w}* → {', '.join(s) or 'no close word'}" for w, s in g.prompt.suggestions.items())
        words += f"  \nIgnored (unknown): {hints}"
    return images, g.seed, words


def uploaded_path(image: dict | str | None) -> Path:
    """The uploaded file's path (the event skips Gradio's own decoding so crossgen's loader can explain
    what is wrong with a bad file). Only files inside Gradio's upload folder are read."""
    if not image:
        raise gr.Error("Drop an image first (PNG, JPEG, GIF, WebP).")
    path = Path(image["path"] if isinstance(image, dict) else image).resolve()
    if not path.is_relative_to(Path(get_upload_folder()).resolve()):
        raise gr.Error("Upload the image through the app.")
    return path


def image_to_text(image: dict | str | None, beam: float = 3):
    """Uploaded image → best caption and the n-best captions with their probabilities."""
    image = uploaded_path(image)
    p = pipeline()
    try:
        captions = p.image_to_text(image, beam=int(beam), n_best=min(int(beam), 5))
    except crossgen.CrossgenError as e:
        raise gr.Error(str(e)) from None
    return captions[0][0], {text: math.exp(logprob) for text, logprob in captions}


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
                with gr.Row():
                    n_images = gr.Slider(1, 16, value=4, step=1, label="Number of images")
                    seed = gr.Number(-1, label="Seed (-1 = random)", precision=0)
                    temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
                draw = gr.Button("Draw", variant="primary")
                gr.Examples(EXAMPLE_PROMPTS, inputs=prompt)
            with gr.Column():
                gallery = gr.Gallery(label="Generated images", columns=4, height="auto", object_fit="contain")
                seed_used = gr.Number(label="Seed used", precision=0, interactive=False)
                words = gr.Markdown()
    with gr.Tab("Image → Text"):
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=256)
                beam = gr.Slider(1, 10, value=3, step=1, label="Beam width (1 = greedy)")
                caption_btn = gr.Button("Caption", variant="primary")
                examples = sorted(str(p) for p in ASSETS.glob("examples/*.png"))
                if examples:
                    gr.Examples(examples, inputs=image)
            with gr.Column():
                caption = gr.Textbox(label="Caption", interactive=False)
                nbest = gr.Label(label="n-best captions (probability)", num_top_classes=5)

    # wiring
    demo.load(status_message, None, status, api_name=False)
    demo.load(about_markdown, None, about, api_name=False)
    draw.click(text_to_image, [prompt, n_images, seed, temperature], [gallery, seed_used, words], api_name="text_to_image")
    prompt.submit(text_to_image, [prompt, n_images, seed, temperature], [gallery, seed_used, words], api_name=False)
    caption_btn.click(image_to_text, [image, beam], [caption, nbest], api_name="image_to_text", preprocess=False)

demo.queue(default_concurrency_limit=4, max_size=64)

if __name__ == "__main__":
    print(status_message())  # load the models before the first request
    demo.launch(max_file_size=MAX_UPLOAD)
