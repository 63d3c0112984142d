"""The small studio page: handlers, errors as gr.Error, and the API through gradio_client."""

import socket

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from studio.ui import build_ui, fuse

pytestmark = pytest.mark.slow


def test_fuse_handler_returns_a_meter_that_sums_to_one(studio):
    image = Image.new("RGBA", (40, 30), (200, 30, 30, 128))
    audio = (16000, (np.sin(np.arange(16000) / 3) * 8000).astype(np.int16))
    meter, latent, summary = fuse(studio, "a red bird", 1.0, image, 2.0, audio, 0.5)
    assert set(meter) == {"text", "image", "audio", "prior"}
    assert sum(meter.values()) == pytest.approx(1.0, abs=1e-4)
    assert len(latent) == studio.joint.config.latent_dim
    assert "text, image, audio" in summary


def test_empty_text_alone_and_bad_weights_are_gr_errors(studio):
    with pytest.raises(gr.Error, match="at least one input"):
        fuse(studio, "   ", 1.0, None, 1.0, None, 1.0)
    with pytest.raises(gr.Error, match="zero"):
        fuse(studio, "a cat", 0.0, None, 1.0, None, 1.0)
    with pytest.raises(gr.Error, match="silent"):
        fuse(studio, None, 1.0, None, 1.0, (8000, np.zeros(8000)), 1.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_page_serves_the_fuse_endpoint(studio):
    from gradio_client import Client

    demo = build_ui(studio)
    demo.queue(max_size=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, ssr_mode=False, quiet=True
    )
    try:
        client = Client(demo.local_url, verbose=False)
        meter, _, summary = client.predict("a violin", 1.0, None, 1.0, None, 1.0, api_name="/fuse")
        assert meter["label"] in ("text", "prior")
        assert "text" in summary
    finally:
        demo.close()
