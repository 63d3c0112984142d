"""studio-train end to end on a tiny corpus: every stage, resume, export, and the exported studio generates."""

import json
import re

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageDraw

from core.data.manifest import Item, write_manifest
from core.training.stages import STAGES, main

pytestmark = pytest.mark.slow

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220)}
PITCHES = {"red": 330.0, "green": 440.0, "blue": 660.0}


def tiny_corpus(folder):
    """Nine items: for each of three colours an image+text, a sound+text and an image+sound+text item."""
    (folder / "images").mkdir(parents=True)
    (folder / "sounds").mkdir()
    items = []
    for colour, rgb in COLOURS.items():
        for kind in ("image", "sound", "both"):
            key = f"{colour}-{kind}"
            image = sound = None
            if kind in ("image", "both"):  # 128-px tiles, as studio-data makes
                picture = Image.new("RGB", (128, 128), "white")
                ImageDraw.Draw(picture).ellipse((24, 24, 104, 104), fill=rgb)
                image = f"images/{key}.png"
                picture.save(folder / image)
            if kind in ("sound", "both"):
                t = np.arange(22050) / 22050
                sound = f"sounds/{key}.wav"
                soundfile.write(folder / sound, (0.4 * np.sin(2 * np.pi * PITCHES[colour] * t)).astype(np.float32), 22050)
            items.append(Item(id=key, concept=colour, category="colour", caption=f"a {colour} circle", source="test",
                              package="test", licence="CC0", origin=key, image=image, sound=sound, image_side=image and 400))
    write_manifest(items, folder)


def test_every_stage_runs_resumes_and_exports(tmp_path):
    from core import load_studio

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    tiny_corpus(corpus)
    steps = json.dumps({"sound_encoder": 3, "joint": 3, "image_prior": 3, "image_autoencoder": 2, "image_decoder": 2, "image_diffusion": 2, "sound_diffusion": 2, "caption": 2})
    common = ["--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--steps", steps]
    main(["embeddings", *common])
    with pytest.raises(SystemExit) as stopped:  # out of time before its budget: exit 3, run again
        main(["sound_encoder", *common, "--max-minutes", "1e-9"])
    assert stopped.value.code == 3
    for stage in STAGES[1:-1]:
        main([stage, *common])
    for part in ("audio_encoder", "joint", "image_prior", "image_vae", "image_unet", "audio_unet", "caption_decoder"):
        assert list((run / "parts" / part).glob("*.safetensors")), part
    # the image prior is the stage run last: image_bank (after image_prior in STAGES), image_prior again, then the bank
    prior_class = lambda: json.loads((run / "parts" / "image_prior" / "config.json").read_text())["_class_name"]  # noqa: E731
    assert prior_class() == "EmbeddingBank"
    main(["image_prior", *common])
    assert prior_class() == "EmbeddingPrior"
    main(["image_bank", *common])
    assert prior_class() == "EmbeddingBank"
    # a second call of a finished stage resumes at its budget and trains no further
    main(["joint", *common])
    assert len(list((run / "stages" / "joint" / "checkpoints").glob("step-*"))) == 1

    main(["joint", *common, "--joint-objective", '{"input_noise": 1.5}'])
    # a call without overrides keeps the budgets and objective the run's plan.json holds
    main(["export", "--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--export-to", str(tmp_path / "studio"), "--guidance", '{"image": 6.5}',
          "--prior-sampling", '{"guidance": 1.5, "temperature": 0.5}', "--temperature", '{"image": 0.5}'])
    plan = json.loads((run / "plan.json").read_text())
    assert plan["steps"]["caption"] == 2 and plan["joint_objective"]["input_noise"] == 1.5
    studio = load_studio(tmp_path / "studio")
    assert studio.pipeline.config.default_guidance == {"image": 6.5, "audio": 5.0, "caption": 1.0}  # the plan's guidance, exported
    assert studio.pipeline.config.prior_guidance == 1.5 and studio.pipeline.config.prior_temperature == 0.5
    assert studio.pipeline.image_prior.is_trained and type(studio.pipeline.image_prior).__name__ == "EmbeddingBank"
    assert studio.pipeline.image_prior.config.candidates == 4  # the plan's default: seeds draw among the 4 nearest
    assert studio.generate("image", text="a red circle", steps=2).recipe["guidance"] == 6.5
    assert studio.pipeline.config.latent_temperature == {"image": 0.5} and plan["latent_temperature"] == {"image": 0.5}
    assert studio.generate("image", text="a red circle", steps=2).recipe["temperature"] == 0.5
    for wrong in ('{"image": 3}', '{"sound": 0.5}', '{"image": "warm"}'):
        with pytest.raises(SystemExit):
            main(["export", "--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--temperature", wrong])
    for wrong in ('{"image": "high"}', '{"picture": 5}', '{"image": -1}', '{"prior": 1}'):
        with pytest.raises(SystemExit):
            main(["export", "--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--guidance", wrong])
    for wrong in ('{"temperature": 0}', '{"temperature": 2.5}', '{"temperature": true}', '{"steps": 5}', '[1]', '{"candidates": 0}', '{"candidates": 2.5}'):
        with pytest.raises(SystemExit):
            main(["export", "--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--prior-sampling", wrong])
    assert studio.is_trained and studio.weights_version.startswith("trained-")
    assert re.fullmatch(r"trained-\d{8}-[0-9a-f]{8}", studio.weights_version)
    from safetensors import safe_open

    with safe_open(str(next((tmp_path / "studio" / "joint").glob("*.safetensors"))), "pt") as weights:
        dtypes = {str(weights.get_tensor(name).dtype) for name in list(weights.keys())}
    assert dtypes == {"torch.float16"}  # shipped small; load_studio casts back to fp32
    from core.decoders.vocoder import Vocoder

    studio.pipeline._vocoder = Vocoder(method="griffin-lim", griffin_lim_iters=2)
    picture = studio.generate("image", text="a red circle", steps=2).outputs[0]
    assert isinstance(picture, Image.Image) and picture.size == (128, 128)  # the decoder learned the 128-px tiles
    assert studio.generate("audio", image=str(corpus / "images/blue-image.png"), steps=2).outputs[0][0] == 22050
    assert isinstance(studio.caption(image=str(corpus / "images/green-image.png")).outputs[0], str)
    assert studio.pipeline.caption_decoder.lexicon.words == ["a", "blue", "circle", "green", "red"]  # the training captions' words
    captions = studio.pipeline.caption_decoder  # only the rows of those words' pieces and of [PAD], [CLS], [SEP] ship
    assert captions.config.kept_token_ids == sorted({*captions.lexicon.token_ids, 0, 101, 102})

    # a fresh run seeded from the export: its trained parts and the sound cache, without training them again
    import torch
    from safetensors.torch import load_file

    fresh, tiny = tmp_path / "fresh", ["--corpus", str(corpus), "--size", "tiny"]
    main(["embeddings", *tiny, "--run", str(fresh)])
    main(["import", *tiny, "--run", str(fresh), "--from-studio", str(tmp_path / "studio")])
    assert sorted(p.name for p in (fresh / "parts").iterdir()) == sorted(p.name for p in (run / "parts").iterdir())
    own, imported = load_file(str(run / "cache" / "audio.safetensors"))["audio"], load_file(str(fresh / "cache" / "audio.safetensors"))["audio"]
    assert torch.allclose(own, imported, atol=5e-2, rtol=1e-2)  # the same encoder, through fp16
    joint = next((fresh / "parts" / "joint").glob("*.safetensors"))
    before = joint.stat().st_mtime_ns
    main(["import", *tiny, "--run", str(fresh), "--from-studio", str(tmp_path / "studio")])  # a run's own parts are kept
    assert joint.stat().st_mtime_ns == before
    with pytest.raises(SystemExit):
        main(["import", *tiny, "--run", str(fresh)])


def test_a_stage_packed_for_the_gpu_machine_runs_from_its_pack_alone_and_unpacks(tmp_path, monkeypatch):
    """pack → the device call (here on the CPU, without the packaged encoders) → unpack, for each kind of device stage."""
    import torch

    from core.training import device
    from core.training.stages import Run, TrainPlan

    corpus, run_folder = tmp_path / "corpus", tmp_path / "run"
    tiny_corpus(corpus)
    common = ["--corpus", str(corpus), "--run", str(run_folder), "--size", "tiny", "--steps", json.dumps(dict.fromkeys(STAGES, 2))]
    for stage in ("embeddings", "sound_encoder", "joint", "image_autoencoder", "sound_diffusion"):
        main([stage, *common])
    run_old = run_folder / "stages" / "sound_diffusion"
    before = {p.name: p.stat().st_mtime_ns for p in (run_folder / "parts" / "audio_unet").glob("*.safetensors")}
    for stage in ("image_diffusion", "sound_diffusion", "image_prior", "joint", "sound_encoder"):
        pack = tmp_path / "packs" / stage
        main(["pack", stage, *common[:4], "--into", str(pack), "--minutes", "0.01", "--batch-size", "4"])
        assert not list(pack.rglob("*.bin")) and device.folder_bytes(pack) < 2**20
        # there: no corpus, no packaged encoders, no run folder
        import core.encoders.image
        import core.encoders.text

        with monkeypatch.context() as patched:
            for module, name in ((core.encoders.text, "SentenceTextEncoder"), (core.encoders.image, "EfficientNetImageEncoder")):
                patched.setattr(module, name, lambda *a, **k: pytest.fail("a packaged encoder was loaded on the device"))
            report = device.run_pack(pack, tmp_path / "out" / stage)
        assert report["stage"] == stage and report["steps"] >= 1 and report["samples_per_second"] > 0 and report["batch_size"] == 4
        returned = sorted(p.relative_to(tmp_path / "out" / stage).as_posix() for p in (tmp_path / "out" / stage).rglob("*") if p.is_file())
        assert len(returned) <= 8 and "device.json" in returned
        main(["unpack", stage, *common[:4], "--from", str(tmp_path / "out" / stage)])
        assert list((run_folder / "device").glob(f"{stage}-*.json"))
    # the returned weights became the run's parts (fp32), and the run's own checkpoints were set aside
    assert not run_old.exists() and list(run_folder.glob("stages/sound_diffusion.before-device-*"))
    after = {p.name: p.stat().st_mtime_ns for p in (run_folder / "parts" / "audio_unet").glob("*.safetensors")}
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
    from safetensors.torch import load_file

    assert {v.dtype for v in load_file(str(next((run_folder / "parts" / "image_unet").glob("*.safetensors")))).values()} == {torch.float32}
    assert json.loads((run_folder / "parts" / "image_prior" / "config.json").read_text())["_class_name"] == "EmbeddingPrior"
    main(["export", *common[:4], "--export-to", str(tmp_path / "studio")])
    from core import load_studio

    assert load_studio(tmp_path / "studio").generate("image", text="a red circle", steps=2).outputs[0].size == (64, 64)  # no image_decoder stage: 64 px
    with pytest.raises(ValueError, match="does not run on the GPU machine"):
        device.pack_stage("caption", Run(corpus, run_folder, TrainPlan.of_run(run_folder)), None, tmp_path / "x", 1.0)
    with pytest.raises(ValueError, match="lacks the trained"):
        main(["unpack", "joint", *common[:4], "--from", str(tmp_path / "empty")])


def test_the_weights_digest_changes_with_any_weight():
    import torch

    from core.pipelines.build import build_studio_pipeline
    from core.training.stages import weights_digest

    pipeline = build_studio_pipeline("tiny", preset="tiny")
    before = weights_digest(pipeline)
    assert weights_digest(pipeline) == before
    with torch.no_grad():
        next(pipeline.joint.parameters()).view(-1)[0] += 1e-3
    assert weights_digest(pipeline) != before


def test_showcase_writes_the_contact_sheet_and_image_to_sound_examples(tmp_path, tiny_studio):
    from core.data.manifest import read_manifest
    from core.evaluation.showcase import PROMPTS, make_showcase

    corpus = tmp_path / "corpus"
    tiny_corpus(corpus)
    write_manifest([i.with_split("heldout_item") if i.id.endswith("both") else i for i in read_manifest(corpus)], corpus)  # one per colour
    from core.decoders.vocoder import Vocoder

    tiny_studio.pipeline._vocoder = Vocoder(method="griffin-lim", griffin_lim_iters=2)
    settings = make_showcase(tiny_studio, corpus, tmp_path / "showcase", sounds=2, steps=2, variants=2)
    for name in ("contact_sheet.png", "contact_sheet_first.png"):  # best first of two, and the first variants
        assert Image.open(tmp_path / "showcase" / name).size == (8 * 128, 4 * (128 + 30))
    assert len(settings["prompts"]) == len(PROMPTS) == 32 and settings["best_first"] is True
    assert set(settings["chosen_seeds"]) <= {0, 1} and len(settings["chosen_seeds"]) == 32
    assert [e["id"] for e in settings["image_to_sound"]] == ["blue-both", "green-both"]
    for key in ("blue-both", "green-both"):
        generated, rate = soundfile.read(tmp_path / "showcase" / "image_to_sound" / f"{key}.wav")
        real, _ = soundfile.read(tmp_path / "showcase" / "image_to_sound" / f"{key}.real.wav")
        assert rate == 22050 and len(real) == 44100 and np.isfinite(generated).all() and generated.size > 0
        assert (tmp_path / "showcase" / "image_to_sound" / f"{key}.png").is_file()
    settings = make_showcase(tiny_studio, corpus, tmp_path / "seeds", sounds=0, steps=2, seeds=2)  # two tiles a prompt
    assert Image.open(tmp_path / "seeds" / "contact_sheet.png").size == (8 * 128, 8 * (128 + 30)) and settings["seeds"] == 2
    with pytest.raises(ValueError, match="not both"):
        make_showcase(tiny_studio, corpus, tmp_path / "both", sounds=0, steps=2, seeds=2, variants=2)


def test_all_runs_every_stage_in_order_but_the_optional_prior(tmp_path, monkeypatch):
    from core.training import stages

    ran = []
    monkeypatch.setattr(stages, "run_stage", lambda stage, run, export_to=None: ran.append(stage) or True)
    main(["all", "--corpus", str(tmp_path / "corpus"), "--run", str(tmp_path / "run"), "--size", "tiny"])
    assert ran == [s for s in STAGES if s != "image_prior"]
    main(["image_prior", "--corpus", str(tmp_path / "corpus"), "--run", str(tmp_path / "run"), "--size", "tiny"])
    assert ran[-1] == "image_prior"  # by name it runs
