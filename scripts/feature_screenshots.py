"""Screenshots of the issue-7 features for the README (run by hand; not a test):

    python scripts/feature_screenshots.py --out /tmp/crossgen-shots [--checkpoints checkpoints]

Starts `app.py` on a free port (`crossgen.serving.app_process.AppServer`, through tests/browser.py), drives Debian's Chromium and writes
hints.png, round_trip_text.png, interpolation.png, round_trip_image.png, edit.png under --out. Take the README's
pictures from the trained checkpoints only, never from the tests' tiny random models.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]
from browser import ROOT, AppServer, chromium_page  # noqa: E402

TIMEOUT_MS = 60_000


def tab(page, name: str, button: str):
    """Select a tab; its panel (the tab panel holding `button`)."""
    page.get_by_role("tab", name=name, exact=True).click()
    return page.get_by_role("tabpanel").filter(has=page.get_by_role("button", name=button, exact=True))


def shoot(page, locator, path: Path) -> None:
    locator.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let images and transitions settle
    locator.screenshot(path=str(path))
    print("wrote", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "crossgen-shots")
    ap.add_argument("--checkpoints", default=None, help="checkpoint folder (default: the app's default)")
    ap.add_argument("--image", default=str(ROOT / "assets" / "examples" / "twemoji_dog.png"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--typo", default="sleepy pupy with a crimsn automobil", help="a prompt with misspelt words")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, AppServer(args.checkpoints, work, device=args.device) as server, \
            chromium_page(Path(work) / "profile", width=1280, height=1000) as page:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url)
        try:
            journey(page, args)
        finally:
            page.screenshot(path=str(args.out / "page.png"), full_page=True)


def journey(page, args) -> None:
    # unknown words highlighted, suggestions offered; click one
    panel = tab(page, "Text → Image", "Draw")
    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill(args.typo)
    hint = panel.get_by_text(" → ", exact=False).first
    hint.wait_for()
    shoot(page, panel.locator(".column").first, args.out / "hints.png")
    hint.click()
    page.wait_for_function("([el, typo]) => el.value !== typo", arg=[prompt.element_handle(), args.typo])

    # round trip: draw, then read the drawings back
    panel.get_by_role("button", name="Draw", exact=True).click()
    panel.get_by_role("button", name="Thumbnail 1 of 4").wait_for()
    panel.get_by_role("button", name="🔁 Read them back", exact=True).click()
    panel.get_by_text("The captioner reads:").wait_for()
    shoot(page, panel.locator(".row").first, args.out / "round_trip_text.png")

    # interpolation strip and GIF
    panel.get_by_role("button", name="Interpolate", exact=True).click()
    panel.get_by_text(".gif").first.wait_for()
    shoot(page, page.locator(".block").filter(has_text="Interpolation strip").first.locator(".."),
          args.out / "interpolation.png")

    # image -> text, then back to pictures
    panel = tab(page, "Image → Text", "Caption")
    panel.locator('input[type="file"][accept*="image"]').first.set_input_files(args.image)
    panel.locator(f'img[src*="{Path(args.image).name}"]').first.wait_for()
    panel.get_by_role("button", name="Caption", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('label textarea, label input')].some("
                           "e => e.closest('label').innerText.trim().startsWith('Caption') && e.value)")
    panel.get_by_role("button", name="🔁 Back to pictures", exact=True).click()
    panel.get_by_role("button", name="Thumbnail 1 of 4").wait_for()
    shoot(page, panel, args.out / "round_trip_image.png")

    # edit with words: the red apple made blue, its leaf and stem kept
    panel = tab(page, "Edit", "Edit")
    apple = str(ROOT / "assets" / "examples" / "twemoji_red_apple.png")
    panel.locator('input[type="file"][accept*="image"]').first.set_input_files(apple)
    panel.locator('img[src*="twemoji_red_apple.png"]').first.wait_for()
    name = panel.get_by_label("Read as (fix it if it is wrong)")
    page.wait_for_function("e => e.value !== ''", arg=name.element_handle())  # the name read, as the browser test waits
    panel.get_by_label("Words", exact=True).fill("blue")
    panel.get_by_text("Will draw:").wait_for()
    panel.get_by_role("button", name="Edit", exact=True).click()
    panel.get_by_text("drawn as").wait_for()
    shoot(page, panel, args.out / "edit.png")


if __name__ == "__main__":
    main()
