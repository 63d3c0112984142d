"""MCP tool results that carry the media: images as MCP image content, sounds as audio content.

Gradio's MCP server (``python app.py --mcp``) answers a tool with one content block per output,
and writes anything but a single image file as text (a list of files became a Python printout).
``serve_media`` replaces how it turns outputs into content, for this app's server: every PNG
or WAV an endpoint returns, alone or in a list, goes out as the file's own bytes (its recipe
inside), followed by its URL; a recipe goes out as compact JSON text; other values as JSON too.
Tools that take media say to pass them as URLs or data: URIs.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path
from typing import Any

from gradio_client.utils import is_file_obj_with_meta


def _file_content(types, file: dict[str, Any]) -> list:
    path, url = file.get("path") or "", file.get("url") or file.get("path") or ""
    mime = file.get("mime_type") or mimetypes.guess_type(path)[0] or ""
    try:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError:
        return [types.TextContent(type="text", text=f"File URL: {url}")]
    if mime.startswith("image/"):
        return [types.ImageContent(type="image", data=data, mimeType=mime), types.TextContent(type="text", text=f"Image URL: {url}")]
    if mime.startswith("audio/") or path.lower().endswith(".wav"):
        return [types.AudioContent(type="audio", data=data, mimeType="audio/wav" if path.lower().endswith(".wav") else mime),
                types.TextContent(type="text", text=f"Sound URL: {url}")]
    return [types.TextContent(type="text", text=f"File URL: {url}")]


def media_content(server, data: list[Any], root_url: str) -> list:
    """The MCP content for an endpoint's outputs (replaces ``GradioMCPServer.postprocess_output_data``)."""
    from gradio import processing_utils

    types = server.types
    data = processing_utils.add_root_url(data, root_url, None)
    content: list = []
    _add(types, data, content, depth=0)
    return content


def _add(types, output: Any, content: list, depth: int) -> None:
    # Gradio hands over an endpoint's outputs as a list, itself in a list when there are several
    if is_file_obj_with_meta(output):
        content += _file_content(types, output)
    elif isinstance(output, (list, tuple)) and depth < 3:
        for item in output:
            _add(types, item, content, depth + 1)
    elif isinstance(output, str):
        content.append(types.TextContent(type="text", text=output))
    elif output is not None:
        if hasattr(output, "model_dump"):  # Gradio's JSON outputs arrive as pydantic models
            output = output.model_dump()
        label = "Recipe: " if isinstance(output, dict) and "kind" in output else ""
        content.append(types.TextContent(type="text", text=label + json.dumps(output, ensure_ascii=False, separators=(",", ":"), default=str)))


def serve_media() -> None:
    """Makes Gradio's MCP server answer with media content (idempotent)."""
    from gradio.mcp import GradioMCPServer

    GradioMCPServer.postprocess_output_data = media_content
    # Gradio's own sentence points to an upload tool this server does not offer
    GradioMCPServer._file_data_tool_description = property(lambda self: " Pass images and sounds as http(s) URLs or data: URIs.")
