"""A studio on a user's own data (``studio-train --data``): a folder in the ``datasets`` layout
with captioned pictures and sounds, bad files among them, trained on a tiny saved studio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image, ImageDraw

from core import load_studio
from core.data.user import UserData
from core.training.stages import main

pytestmark = pytest.mark.slow  # the tiny studio wraps the real packaged encoders
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 70, 200), "yellow": (240, 200, 0)}


def user_folder(folder):
    """Eight good items (pictures, sounds, pairs, a caption alone) and five bad rows."""
    folder.mkdir()
    rows = []
    for index, (colour, rgb) in enumerate(COLOURS.items()):
        picture = Image.new("RGB", (48, 48), "white")
        ImageDraw.Draw(picture).ellipse((8, 8, 40, 40), fill=rgb)
        picture.save(folder / f"{colour}.png")
        t = np.arange(16000) / 16000
        soundfile.write(folder / f"{colour}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * index) * t)).astype(np.float32), 16000)
        rows.append({"file_name": f"{colour}.png", "text": f"a {colour} circle"})
        rows.append({"image_file_name": f"{colour}.png", "audio_file_name": f"{colour}.wav", "text": f"a {colour} tone"} if index % 2
                    else {"file_name": f"{colour}.wav"})
    (folder / "broken.png").write_bytes(b"not a picture")
    soundfile.write(folder / "silent.wav", np.zeros(8000, dtype=np.float32), 16000)
    (folder / "notes.txt").write_text("hello")
    rows += [{"file_name": "broken.png", "text": "a broken picture"}, {"file_name": "silent.wav"}, {"file_name": "missing.png"},
             {"file_name": "notes.txt"}, {"file_name": "../outside.png"}]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_the_folder_is_read_through_datasets_and_bad_files_are_reported_not_fatal(tmp_path):
    data = UserData(user_folder(tmp_path / "mine"))
    items = list(data)
    assert len(items) == 9  # 8 good rows and the broken picture's caption, kept alone
    assert sum(item.image is not None for item in items) == 6 and sum(item.audio is not None for item in items) == 4
    assert [item.modalities for item in items if item.text == "a broken picture"] == [["text"]]
    problems = "\n".join(data.problems)
    for name in ("broken.png", "silent.wav", "missing.png", "notes.txt", "../outside.png"):
        assert name in problems, name
    assert "silent" in problems and "leaves the data folder" in problems and str(tmp_path) not in problems.replace(str(tmp_path / "mine"), "")
    with pytest.raises(ValueError, match="metadata.jsonl"):
        list(UserData(tmp_path))


def test_studio_train_data_writes_a_studio_that_loads_and_draws_the_users_pictures(tmp_path, tiny_studio):
    from core.decoders.embedding_prior import EmbeddingBank
    from core.pipelines.build import load_studio_pipeline

    preset, out, run = tmp_path / "preset", tmp_path / "my-studio", tmp_path / "run"
    tiny_studio.save_pretrained(preset)
    pipeline = load_studio_pipeline(preset)  # a preset that draws images through a bank, as the embedded one does
    pipeline.image_prior = EmbeddingBank.from_embeddings(torch.randn(20, pipeline.joint.config.modality_dims["image"]), components=8)
    pipeline.save_pretrained(preset)
    data = user_folder(tmp_path / "mine")
    command = ["--data", str(data), "--preset", str(preset), "--out", str(out), "--run", str(run), "--steps", "6", "--batch-size", "4"]
    with pytest.raises(SystemExit) as stopped:  # out of time at once: exit 3, and the cache is kept
        main([*command, "--max-minutes", "1e-9"])
    assert stopped.value.code == 3 and (run / "user-embeddings.safetensors").is_file()
    main(command)
    studio = load_studio(out)
    before = load_studio(preset)
    assert not torch.equal(studio.pipeline.joint.heads["text"][0].weight, before.pipeline.joint.heads["text"][0].weight)
    assert len(studio.pipeline.image_prior.entries()) == 4  # the bank holds the user's 4 distinct pictures, not the preset's 20
    assert studio.weights_version.startswith("user-")
    assert studio.generate("image", text="a red circle", steps=1).outputs
    card = (out / "README.md").read_text()
    assert "9 items" in card and "broken.png" in card and "not fine-tuned" in card
    summary = json.loads((run / "user-items.json").read_text())
    assert summary["with"] == {"text": 7, "image": 6, "audio": 4}
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "nowhere"), "--preset", str(preset), "--out", str(tmp_path / "x"), "--run", str(tmp_path / "r2")])
