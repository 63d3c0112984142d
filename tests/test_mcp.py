"""The MCP server, through a real MCP client (the ``mcp`` package): tools answer with the images
and sounds themselves, media go in as URLs or data: URIs, and MCP clients of a public studio
keep their histories apart by the tokens they send."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import jsonschema
import pytest
import soundfile
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from PIL import Image

from studio.recipes import RECIPE_KEY

from .test_app import launch, make_service

pytestmark = pytest.mark.slow  # loads the real packaged encoders
EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "examples" / "red-apple.png"


@pytest.fixture(scope="module")
def mcp_url(tiny_studio, tmp_path_factory):
    service = make_service(tiny_studio.pipeline, tmp_path_factory.mktemp("mcp-history"))
    demo = launch(service, public=True, mcp_server=True)
    yield f"{demo.local_url}gradio_api/mcp/"
    demo.close()


async def _session(url: str, calls, headers: dict | None):
    async with streamablehttp_client(url, headers=headers) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await calls(session)


def run(url: str, calls, headers: dict | None = None):
    return asyncio.run(_session(url, calls, headers))


def test_tools_list_with_valid_schemas_that_document_media_inputs(mcp_url):
    tools = run(mcp_url, lambda session: session.list_tools())
    by_name = {tool.name: tool for tool in tools.tools}
    assert {"text_to_image", "image_to_audio", "caption", "mix", "replay"} <= set(by_name)
    for tool in tools.tools:
        jsonschema.Draft202012Validator.check_schema(tool.inputSchema)
    assert "data: URI" in by_name["image_to_audio"].inputSchema["properties"]["image"]["description"]
    assert "data: URIs" in by_name["image_to_audio"].description and "upload_file_to_gradio" not in by_name["image_to_audio"].description
    properties = by_name["text_to_image"].inputSchema["properties"]
    assert properties["seed"]["type"] == properties["steps"]["type"] == properties["variants"]["type"] == "integer"


def test_text_to_image_and_image_to_sound_return_decodable_media(mcp_url):
    picture = "data:image/png;base64," + base64.b64encode(EXAMPLE.read_bytes()).decode()

    async def calls(session):
        images = await session.call_tool("text_to_image", {"prompt": "a red kite", "seed": 1, "steps": 2, "guidance": 3.0, "variants": 2})
        sound = await session.call_tool("image_to_audio", {"image": picture, "seed": 0, "steps": 2, "guidance": 3.0})
        return images, sound

    images, sound = run(mcp_url, calls)
    assert not images.isError and not sound.isError
    pictures = [block for block in images.content if block.type == "image"]
    assert len(pictures) == 2
    for block in pictures:
        decoded = Image.open(io.BytesIO(base64.b64decode(block.data)))
        assert decoded.size[0] > 0 and json.loads(decoded.text[RECIPE_KEY])["inputs"]["text"] == "a red kite"  # the recipe travels inside
    recipe = next(block.text for block in images.content if block.type == "text" and block.text.startswith("Recipe: "))
    assert json.loads(recipe.removeprefix("Recipe: "))["num_outputs"] == 2
    sounds = [block for block in sound.content if block.type == "audio"]
    assert len(sounds) == 1 and sounds[0].mimeType == "audio/wav"
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(sounds[0].data)))
    assert rate > 0 and len(samples) > 1000


def test_mcp_clients_keep_their_histories_apart_by_their_tokens(mcp_url):
    async def make_and_list(session):
        await session.call_tool("text_to_image", {"prompt": "a lonely kite", "seed": 3, "steps": 1, "guidance": 3.0, "variants": 1})
        return await session.call_tool("history", {"limit": 50})

    async def just_list(session):
        return await session.call_tool("history", {"limit": 50})

    def listed(result) -> str:
        return "".join(block.text for block in result.content if block.type == "text")

    alice, bob = {"Authorization": "Bearer alice-token"}, {"Authorization": "Bearer bob-token"}
    assert "a lonely kite" in listed(run(mcp_url, make_and_list, alice))
    assert "a lonely kite" in listed(run(mcp_url, just_list, alice))  # the same token, a new session
    assert "a lonely kite" not in listed(run(mcp_url, just_list, bob))
    assert "a lonely kite" not in listed(run(mcp_url, just_list))  # no token: nothing stays listable
