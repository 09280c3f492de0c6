"""The two user journeys in a real browser (Debian's Chromium driven by Playwright) against `python app.py`
on localhost with tiny random checkpoints: type a prompt and see images; upload an image and see a caption;
a bad input shows the app's message and the next good one works.

Without Chromium these tests skip with the reason, except in CI (`CI=true`), where they fail.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import browser
from bad_inputs import CASES, NO_WORDS
from browser import ROOT, AppServer, UIError, caption, chromium_page, draw, not_an_emoji_notice, wait_until
from helpers import SENTENCES, scratch

EXAMPLES = ROOT / "assets" / "examples"
TINY_VOCAB = {w for s in SENTENCES for w in s}  # every word the tiny captioner can say


def require_chromium() -> None:
    """Skip (outside CI) or fail (in CI, `CI=true`) when the browser cannot run here."""
    reason = browser.chromium_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def server(tiny_checkpoints, tmp_path_factory):
    require_chromium()
    with scratch(tmp_path_factory, "browser_server") as folder, AppServer(tiny_checkpoints, folder) as srv:
        yield srv


@pytest.fixture
def page(server, tmp_path):
    """A fresh browser (new profile) on the app's page."""
    with chromium_page(tmp_path / "profile") as pg:
        pg.goto(server.url)
        yield pg
    assert server.alive(), f"the server died:\n{server.log()[-3000:]}"


def assert_gallery(images: list[tuple[str, int, int]], server: AppServer) -> None:
    assert images, "no images in the gallery"
    for src, width, height in images:
        assert src.startswith(server.url), f"image not served by the app: {src}"
        assert width > 0 and width == height, f"{src} did not load as a square picture ({width}x{height})"
    assert len({src for src, _, _ in images}) == len(images), "the same image shown twice"


@pytest.mark.browser
@pytest.mark.slow
def test_type_prompt_click_draw_see_images(page, server):
    images = draw(page, "red apple")
    assert_gallery(images, server)
    again = draw(page, "dog face")
    assert_gallery(again, server)
    assert not {s for s, _, _ in images} & {s for s, _, _ in again}, "the gallery was not replaced"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("name", ["twemoji_dog.png", "twemoji_pizza.png"])
def test_upload_image_click_caption_see_text(page, name):
    text = caption(page, EXAMPLES / name)
    words = text.split()
    assert words, f"empty caption for {name}"
    assert set(words) <= TINY_VOCAB, f"{text!r} is not something the captioner can say"


@pytest.mark.browser
@pytest.mark.slow
def test_switch_tabs_and_back(page, server):
    """Both journeys on one page: the drawn images are still there after captioning."""
    images = draw(page, "red heart")
    assert caption(page, EXAMPLES / "twemoji_red_heart.png")
    page.get_by_role("tab", name="Text → Image", exact=True).click()
    thumbs = page.get_by_role("button", name=re.compile(r"^Thumbnail \d+ of \d+$"))
    assert thumbs.count() == len(images)


@pytest.mark.browser
@pytest.mark.slow
def test_bad_input_shows_message_then_good_input_works(page, server, tmp_path):
    with pytest.raises(UIError, match=NO_WORDS):
        draw(page, "   ")
    assert_gallery(draw(page, "pizza"), server)
    with pytest.raises(UIError, match=r"Invalid file type"):  # refused by the page before any upload
        caption(page, ROOT / "README.md")
    damaged = next(c for c in CASES if c.id == "truncated-png")
    path = tmp_path / "damaged.png"
    path.write_bytes(damaged.payload())
    with pytest.raises(UIError, match=damaged.api_message or damaged.message):  # refused by app.py
        caption(page, path)
    assert caption(page, EXAMPLES / "twemoji_thumbs_up.png")


def test_missing_chromium_skips_outside_ci_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Chromium not found at .*no-chromium"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"cannot run in CI: Chromium not found"):
        require_chromium()


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    require_chromium()
    with scratch(tmp_path_factory, "shipped_browser_server") as folder, AppServer(ROOT / "checkpoints", folder) as srv:
        yield srv


@pytest.mark.browser
@pytest.mark.slow
def test_a_photo_gets_the_not_an_emoji_notice_and_an_emoji_does_not(shipped_server, tmp_path):
    """On the shipped checkpoints: the cat photo is captioned with the notice, its caption and guesses marked unsure;
    then the Twemoji dog is captioned as before, without the notice."""
    import skimage.data
    from PIL import Image

    cat = tmp_path / "chelsea.png"
    Image.open(next(Path(skimage.data.__file__).parent.glob("chelsea.*"))).save(cat)
    with chromium_page(tmp_path / "profile") as page:
        page.goto(shipped_server.url)
        assert caption(page, cat).endswith("(unsure)"), "the caption box does not mark the guess as unsure"
        assert "doesn't look like an emoji" in not_an_emoji_notice(page)
        assert page.get_by_text("(unsure)").count() >= 1, "the guesses are not marked as unsure"
        assert caption(page, EXAMPLES / "twemoji_dog.png") == "dog"
        assert not_an_emoji_notice(page) == ""
    assert shipped_server.alive(), f"the server died:\n{shipped_server.log()[-3000:]}"


@pytest.mark.browser
@pytest.mark.slow
def test_drawn_images_name_their_drawing_and_download_transparent(shipped_server, tmp_path):
    """On the shipped checkpoints: "blue apple" draws images captioned with the drawing they came from, and the
    transparent PNG of the first downloads from the page with see-through corners and an opaque apple."""
    import io

    import numpy as np
    from PIL import Image

    with chromium_page(tmp_path / "profile") as page:
        page.goto(shipped_server.url)
        assert_gallery(draw(page, "blue apple"), shipped_server)
        panel = page.locator(".tabitem").filter(has=page.get_by_role("button", name="Draw", exact=True)).first
        assert panel.get_by_text("from “").count() >= 1, "no image names the drawing it came from"
        links = panel.locator("a[href$='-64px.png']")
        wait_until(page, lambda: links.count() == 4, "the four transparent 64 px PNGs")
        png = Image.open(io.BytesIO(page.request.get(links.first.get_attribute("href")).body()))
        alpha = np.asarray(png.convert("RGBA"))[..., 3]
        assert png.mode == "RGBA" and png.size == (64, 64)
        assert alpha[[0, 0, -1, -1], [0, -1, 0, -1]].max() == 0 and alpha[24:40, 24:40].min() == 255
    assert shipped_server.alive(), f"the server died:\n{shipped_server.log()[-3000:]}"


@pytest.mark.browser
@pytest.mark.slow
def test_edit_an_emoji_with_words_and_download_it_transparent(shipped_server, tmp_path):
    """On the shipped checkpoints: drop the Twemoji red apple in the Edit tab, see its name read, type "blue", see
    what will be drawn, click Edit: a blue apple, and a transparent PNG of it with see-through corners."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    from crossgen.imaging.colour import read_colour

    with chromium_page(tmp_path / "profile") as page:
        page.goto(shipped_server.url)
        panel = browser.open_tab(page, "Edit", "Edit")
        panel.locator('input[type="file"][accept*="image"]').first.set_input_files(str(ROOT / "assets" / "examples" /
                                                                                    "twemoji_red_apple.png"))
        name = panel.get_by_label("Read as (fix it if it is wrong)")
        wait_until(page, lambda: name.input_value() == "red apple", "the name read from the image")
        panel.get_by_label("Words", exact=True).fill("blue")
        wait_until(page, lambda: "Will draw: blue apple" in panel.inner_text(), "the caption to draw")
        browser.click_and_wait(page, panel, "Edit")
        assert "drawn as blue apple" in panel.inner_text()
        links = panel.locator("a[href$='-64px.png']")
        wait_until(page, lambda: links.count() == 1, "the transparent 64 px PNG")
        png = Image.open(io.BytesIO(page.request.get(links.first.get_attribute("href")).body())).convert("RGBA")
        rgba = np.asarray(png)
        assert rgba[..., 3][[0, 0, -1, -1], [0, -1, 0, -1]].max() == 0
        on_white = Image.alpha_composite(Image.new("RGBA", png.size, "white"), png).convert("RGB")
        assert read_colour(torch.from_numpy(np.array(on_white)).permute(2, 0, 1).float() / 255) == "blue"
    assert shipped_server.alive(), f"the server died:\n{shipped_server.log()[-3000:]}"
