"""The app as an MCP server: `GRADIO_MCP_SERVER=True python app.py` with the shipped checkpoints on loopback.

The tool list and descriptions come from `/gradio_api/mcp/schema` (Gradio builds them from the endpoint
functions' docstrings); the tools are called through the `mcp` client package over streamable HTTP, as an
MCP client (an editor, a chat app) would call them.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import urllib.request

import pytest
from PIL import Image

from crossgen.serving.app_process import ROOT, AppServer
from helpers import scratch

pytestmark = pytest.mark.slow  # the app in a subprocess with the shipped models

SHIPPED = ROOT / "checkpoints"
EXAMPLES = ROOT / "assets" / "examples"
# tool name -> the start of its description (the docstring's summary line) and its parameters
TOOLS = {
    "text_to_image": ("Draw emoji-style images", {"prompt", "n", "seed", "temperature"}),
    "image_to_text": ("Caption an image", {"image", "beam"}),
    "prompt_words": ("Check which words of a text prompt", {"prompt"}),
    "caption_generated": ("Round trip: caption each image", {"gallery"}),
    "draw_from_caption": ("Round trip: draw images from a caption", {"caption_text", "n", "seed", "temperature"}),
    "edit_emoji": ("Edit an emoji with words", {"image", "words", "name", "artist"}),
    "interpolate": ("Morph between two text prompts", {"prompt_a", "prompt_b", "k", "seed", "temperature"}),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with (scratch(tmp_path_factory, "mcp_server") as folder,
          AppServer(SHIPPED, folder, env={"GRADIO_MCP_SERVER": "True"}) as srv):
        yield srv


def call_tools(url: str, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:
    """The server's tool names and the results of `calls` ((tool, arguments) pairs), over streamable HTTP."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with streamable_http_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = [t.name for t in (await session.list_tools()).tools]
                return names, [await session.call_tool(name, args) for name, args in calls]

    return asyncio.run(run())


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_schema_lists_the_tools_with_their_descriptions(server):
    with urllib.request.urlopen(server.url + "gradio_api/mcp/schema", timeout=30) as r:
        schema = {tool["name"]: tool for tool in json.load(r)}
    assert set(schema) == set(TOOLS), "only the named endpoints are tools (the page-load events are not)"
    for name, (summary, params) in TOOLS.items():
        tool = schema[name]
        assert tool["description"].startswith(summary), tool["description"]
        assert "Returns: " in tool["description"], f"{name}: the docstring's Returns section is in the description"
        props = tool["inputSchema"]["properties"]
        assert set(props) == params
        for param, spec in props.items():
            assert len(spec.get("description", "")) > 10, f"{name}({param}) has no description (Args: in the docstring)"
    assert schema["text_to_image"]["inputSchema"]["required"] == ["prompt"]
    assert schema["image_to_text"]["inputSchema"]["required"] == ["image"]


def test_tools_draw_and_caption_over_streamable_http(server):
    dog = "data:image/png;base64," + base64.b64encode((EXAMPLES / "twemoji_dog.png").read_bytes()).decode()
    apple = "data:image/png;base64," + base64.b64encode((EXAMPLES / "twemoji_red_apple.png").read_bytes()).decode()
    import skimage.data

    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buf, format="PNG")
    photo = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    names, (drawn, caption, refused, edited, not_emoji) = call_tools(server.url, [
        ("text_to_image", {"prompt": "red apple", "n": 2, "seed": 7}),
        ("image_to_text", {"image": dog, "beam": 3}),
        ("text_to_image", {"prompt": "   "}),
        ("edit_emoji", {"image": apple, "words": "blue"}),
        ("edit_emoji", {"image": photo, "words": "blue"}),
    ])
    assert set(names) == set(TOOLS)

    assert not drawn.isError, text_of(drawn)
    # a gallery comes back as text: the images' URLs on the app (fetched here), each with the drawing it came from,
    # then the seed, the words used and the transparent PNGs (64 and 256 px per image)
    urls = list(dict.fromkeys(re.findall(r"'url': '(http://127\.0\.0\.1:\d+/gradio_api/file=[^']+\.png)'", text_of(drawn))))
    shown = [u for u in urls if not u.endswith("px.png")]
    assert len(shown) == 2 and len(urls) == 6, text_of(drawn)
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as r:
            image = Image.open(io.BytesIO(r.read()))
            size = 192 if url in shown else int(url.rsplit("-", 1)[1].removesuffix("px.png"))
            assert image.format == "PNG" and image.size == (size, size) and (url in shown or image.mode == "RGBA")
    assert ", 7, " in text_of(drawn) and "red apple" in text_of(drawn) and "'caption': 'from “" in text_of(drawn)

    assert not caption.isError, text_of(caption)
    best = re.match(r"\['([^']*)'", text_of(caption))
    assert best and "dog" in best.group(1), text_of(caption)

    assert refused.isError and "prompt" in text_of(refused).lower(), text_of(refused)  # the app's own message
    assert not edited.isError and "drawn as **blue apple**" in text_of(edited), text_of(edited)
    assert not_emoji.isError and "doesn't look like an emoji" in text_of(not_emoji), text_of(not_emoji)
    assert server.alive(), server.log()[-3000:]
