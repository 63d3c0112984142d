"""The Gradio app: page layout and handlers that call the ``core.Studio`` facade.

- ``ui``: the page (Create, Describe, Hear, Search, Morph, History) and the public API;
- ``service``: what each action does, in plain values (no gradio, no tensors);
- ``history``: results on disk, written atomically, capped with oldest-first eviction;
- ``recipes``: recipes inside PNG text chunks and WAV ``LIST/INFO`` chunks;
- ``examples``: the bundled example gallery; ``media``: thumbnails and joined sounds;
- ``requirements``: ``requirements.txt`` for a Space, generated from ``pyproject.toml``.
"""
