"""Gradio's own refusals, made clear: what happens to a request before a handler runs.

Gradio answers an exception that is not a ``gr.Error`` with a bare ``{"error": null}``. Here
every input component's ``preprocess`` and the demo's ``preprocess_data`` are wrapped, so a
payload of the wrong form, a file that was not uploaded (or a folder), an inline file over the
upload cap or a value a component cannot read gets a message that says what to fix, cut short
and never naming a server path.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.exceptions import InvalidPathError
from pydantic import ValidationError

from .guard import Limits

LIMITS = Limits()


def user_error(message: str) -> gr.Error:
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def guard_inputs(demo: gr.Blocks) -> None:
    """Every refusal before a handler runs gets a message too, never Gradio's bare ``{"error": null}``.

    Each input component's ``preprocess`` is wrapped (its own messages are cut short and named
    after the input; a crash on an odd value becomes "could not read"), and so is the demo's
    ``preprocess_data``, where Gradio checks payload types and that files were uploaded.
    """
    for block in demo.blocks.values():
        if isinstance(block, gr.components.Component) and not isinstance(block, (gr.State, gr.BrowserState)) and not getattr(block, "_guarded", False):
            _guard_preprocess(block)
    preprocess_data = demo.preprocess_data

    async def checked(block_fn, inputs, state, *args, **kwargs):
        _check_file_payloads(inputs)
        try:
            return await preprocess_data(block_fn, inputs, state, *args, **kwargs)
        except gr.Error:
            raise
        except InvalidPathError as error:
            raise user_error("A file was not uploaded to this studio: send it through /gradio_api/upload first (gradio_client's handle_file does).") from error
        except ValidationError as error:
            problem = error.errors()[0] if error.errors() else {}
            where = ".".join(str(part) for part in problem.get("loc", ())) or "an input"
            raise user_error(_cut(f"An input has the wrong form ({where}: {problem.get('msg', 'not valid')}).")) from error
        except Exception as error:
            raise user_error(f"The request could not be read ({type(error).__name__}); check the number and types of the inputs.") from error

    demo.preprocess_data = checked


def _check_file_payloads(payload: Any, depth: int = 0) -> None:
    """Every file an input names is a file (Gradio would otherwise take a folder, even its whole
    upload folder, as an upload and later delete it)."""
    if depth > 4:
        return
    if isinstance(payload, dict):
        path, url = payload.get("path"), payload.get("url")
        for inline in (path, url):
            if isinstance(inline, str) and inline.startswith("data:") and len(inline) * 3 // 4 > LIMITS.upload_file_bytes:
                raise user_error(f"A file sent inline is over {LIMITS.upload_file_bytes >> 20} MB, the upload limit; send a smaller file.")
        if isinstance(path, str) and not path.startswith(("http://", "https://", "data:")) and "meta" in payload:
            try:
                is_file = Path(path).is_file()
            except (OSError, ValueError):
                is_file = False
            if not is_file:
                raise user_error("A file input names no uploaded file: send the file through /gradio_api/upload first (gradio_client's handle_file does).")
        for value in payload.values():
            _check_file_payloads(value, depth + 1)
    elif isinstance(payload, list):
        for value in payload[:64]:
            _check_file_payloads(value, depth + 1)


def _guard_preprocess(block) -> None:
    preprocess = block.preprocess
    label = getattr(block, "label", None) or type(block).__name__

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error as error:
            raise gr.Error(_cut(f"{label}: {html.escape(str(error.message), quote=False)}"), print_exception=False) from error
        except Exception as error:
            raise user_error(f"{label}: could not read {_cut(repr(payload), 40)} ({type(error).__name__}).") from error

    block.preprocess = checked
    block._guarded = True
