"""Screenshots of both tabs for the README, made by the same user journeys as the browser tests:

    python scripts/screenshots.py [--checkpoints checkpoints] [--out assets/screenshots]

starts `python app.py` on 127.0.0.1 with the given checkpoints, draws a prompt in "Text → Image" and
captions an example image in "Image → Text", and saves `text_to_image.png` and `image_to_text.png`.
Run it on the shipped checkpoints: screenshots of untrained test models show noise.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]
from browser import ROOT, AppServer, UIError, caption, chromium_missing_reason, chromium_page, draw  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints", help="checkpoint folder (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots", help="where the PNGs go (default: %(default)s)")
    ap.add_argument("--prompt", default="red apple", help="prompt typed in Text → Image (default: %(default)s)")
    ap.add_argument("--image", type=Path, default=ROOT / "assets" / "examples" / "twemoji_dog.png",
                    help="image uploaded in Image → Text (default: %(default)s)")
    ap.add_argument("--device", default="cpu", help="CROSSGEN_DEVICE for the app (default: %(default)s)")
    ap.add_argument("--width", type=int, default=1280, help="browser window width in pixels (default: %(default)s)")
    ap.add_argument("--height", type=int, default=900, help="browser window height in pixels (default: %(default)s)")
    ap.add_argument("--full-page", action="store_true", help="the whole page, not only the window")
    return ap.parse_args(argv)


def emoji_font_missing() -> bool:
    """True when fontconfig knows no font with emoji (the page's emoji would show as empty boxes)."""
    try:
        found = subprocess.run(["fc-list", ":lang=und-zsye", "family"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False  # cannot tell
    return found.returncode == 0 and not found.stdout.strip()


def take_screenshots(checkpoints: Path, out: Path, prompt: str, image: Path, device: str, size: tuple[int, int],
                     full_page: bool = False) -> list[Path]:
    """Run both journeys in a fresh browser and save a screenshot after each."""
    out.mkdir(parents=True, exist_ok=True)
    shots = [out / "text_to_image.png", out / "image_to_text.png"]
    with tempfile.TemporaryDirectory(prefix="crossgen_screenshots_") as work:
        with AppServer(checkpoints, Path(work) / "server", device=device) as server:
            with chromium_page(Path(work) / "profile", width=size[0], height=size[1]) as page:
                page.goto(server.url)
                images = draw(page, prompt)
                print(f"Text → Image: {prompt!r} gave {len(images)} images")
                page.screenshot(path=str(shots[0]), full_page=full_page)
                text = caption(page, image)
                print(f"Image → Text: {image.name} → {text!r}")
                page.screenshot(path=str(shots[1]), full_page=full_page)
    return shots


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if reason := chromium_missing_reason():
        print(f"Cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    if emoji_font_missing():
        print("Warning: no emoji font installed, emoji in the page will show as boxes "
              "(apt-get install fonts-noto-color-emoji)", file=sys.stderr)
    try:
        shots = take_screenshots(args.checkpoints.resolve(), args.out.resolve(), args.prompt, args.image.resolve(),
                                 args.device, (args.width, args.height), args.full_page)
    except UIError as e:
        print(f"The app answered with an error: {e}", file=sys.stderr)
        return 1
    for path in shots:
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
