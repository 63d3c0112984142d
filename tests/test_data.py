"""The corpus builder (`studio-data`), on tiny fake package folders made in code: no network, no apt."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageDraw

from core.data import packages
from core.data.candidate import SourceSettings
from core.data.cli import main
from core.data.corpus import BuildOptions, build_corpus, collect_candidates
from core.data.general_midi import FAMILIES, INSTRUMENTS
from core.data.joins import join_by_concept
from core.data.licences import licence_for, read_copyright
from core.data.manifest import SPLITS, Item, read_manifest
from core.data.normalise import CLIP_SAMPLES, SkipItem, image_tile, sound_clip, to_tile
from core.data.sources import SOURCES, openclipart, soundfont
from core.data.splits import assign_splits
from core.data.text import EnglishWords, clean_caption, concept_of, split_words

WORDS = (
    "a", "an", "the", "of", "with", "and", "in", "violin", "cow", "bell", "horse", "star", "coin",
    "grinning", "face", "one", "old", "Horse", "house", "silent", "moo", "sound", "dog", "drawn",
)  # fmt: skip
RATE = 44100


# ---- fake package folders, laid out like the real ones ------------------------------------


def write_sine(
    path: Path, seconds: float, rate: int = RATE, channels: int = 1, amplitude=0.5
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * 440 * t)
    kind = "OGG" if path.suffix in (".ogg", ".oga") else "WAV"
    soundfile.write(path, np.stack([wave] * channels, axis=1), rate, format=kind)
    return path


def write_drawing(path: Path, size=(120, 80), colour=(200, 30, 30, 255)) -> Path:
    """A coloured rectangle on a transparent (RGBA) background."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((10, 10, size[0] - 11, size[1] - 11), fill=colour)
    image.save(path)
    return path


def svg(title: str, colour: str = "blue") -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'width="100" height="50"><metadata><dc:title>' + title + "</dc:title></metadata>"
        f'<rect x="5" y="5" width="90" height="40" fill="{colour}"/></svg>'
    )


def make_emoji(root: Path) -> None:
    entries = [
        {"name": "VIOLIN", "image": "1f3bb.png", "category": "Objects", "sort_order": 2},
        {
            "name": "GRINNING FACE",
            "image": "1f600.png",
            "category": "Smileys & Emotion",
            "sort_order": 1,
        },
        {"name": "SQUARED CJK UNIFIED IDEOGRAPH-7533", "image": "1f235.png", "category": "Symbols"},
        {
            "name": "EMOJI MODIFIER FITZPATRICK TYPE-1-2",
            "image": "1f3fb.png",
            "category": "Component",
        },
        {"name": "NO PICTURE", "image": "0000.png", "category": "Objects"},
    ]
    folder = root / "package"
    (folder / "img/google/64").mkdir(parents=True)
    (folder / "emoji.json").write_text(json.dumps(entries))
    for entry in entries[:4]:
        write_drawing(folder / "img/google/64" / entry["image"], (64, 64))


def make_tuxpaint(root: Path) -> None:
    stamps = root / "usr/share/tuxpaint/stamps"
    write_drawing(stamps / "animals/farm/cow.png", (120, 80))
    (stamps / "animals/farm/cow.txt").write_text("A cow. It says moo.\nfr.utf8=Une vache.\n")
    write_sine(stamps / "animals/farm/cow.ogg", 3.0, channels=2)
    write_sine(stamps / "animals/farm/cow_desc.ogg", 1.0)  # a spoken description: not used
    (stamps / "music/violin.svg").parent.mkdir(parents=True)
    (stamps / "music/violin.svg").write_text(svg("violin", "brown"))
    (stamps / "music/violin.txt").write_text("\u201cA violin.\u201d\n")
    write_drawing(stamps / "animals/quiet.png")
    (stamps / "animals/quiet.txt").write_text("A silent house.\n")
    soundfile.write(stamps / "animals/quiet.ogg", np.zeros(RATE), RATE)
    (stamps / "town/bell.txt").parent.mkdir(parents=True)
    (stamps / "town/bell.txt").write_text("A bell.\n")
    write_sine(stamps / "town/bell.ogg", 0.5)


def make_openclipart(svg_root: Path, png_root: Path) -> None:
    folder = svg_root / "usr/share/openclipart/svg"
    files = {
        "animals/horse_kate_smith_01.svg": svg("Horse"),
        "animals/cavallo_01.svg": svg("Cavallo"),  # Italian
        "shapes/stars/star_28pt03step.svg": svg("gramastar"),  # a collection's title, shared
        "shapes/stars/star_31pt05step.svg": svg("gramastar"),
        "animals/dog_01_drawn_with_strai_03.svg": svg("contour_chipmunk"),  # another file's title
        "animals/contour_chipmunk.svg": svg("contour_chipmunk"),
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    write_drawing(png_root / "usr/share/openclipart/png/animals/horse_kate_smith_01.png")


def make_desktop(root: Path) -> None:
    write_sine(root / "usr/share/sounds/freedesktop/stereo/bell.oga", 1.0, rate=48000)
    write_sine(root / "usr/share/sounds/freedesktop/stereo/phone-incoming-call.oga", 1.0)
    copyright_file = root / "usr/share/doc/sound-theme-freedesktop/copyright"
    copyright_file.parent.mkdir(parents=True)
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: stereo/bell.oga stereo/complete.oga\n"
        "Copyright: Dr. Richard Boulanger et al\n  and others\nLicense: CC-BY-3.0\n\n"
        "Files: stereo/phone-incoming-call.oga\nCopyright: Someone\nLicense: GPL-2+\n"
    )


def make_arcade(root: Path) -> None:
    sounds = root / "arcade/resources/assets/sounds"
    write_sine(sounds / "coin1.wav", 0.4)
    write_sine(sounds / "coin1.ogg", 0.4)  # the same effect again: the WAV is used
    write_sine(sounds / "coin2.wav", 0.3)
    write_sine(sounds / "phaseJump1.wav", 0.3)


def make_speech(sounds_root: Path, text_root: Path) -> None:
    voice = sounds_root / "usr/share/asterisk/sounds/en_US_f_Allison"
    write_sine(voice / "digits/1.wav", 0.6, rate=8000)
    write_sine(voice / "beep.wav", 0.2, rate=8000)
    write_sine(voice / "long-prompt.wav", 4.0, rate=8000)
    transcripts = text_root / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
    transcripts.parent.mkdir(parents=True)
    with gzip.open(transcripts, "wt") as file:
        file.write(
            "; Core Asterisk Sounds in English\n\ndigits/1: One.\n"
            "beep: [this is a simple beep tone]\nlong-prompt: Please hold the line.\n"
        )


def make_wordlist(root: Path) -> Path:
    path = root / "usr/share/dict/american-english"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(WORDS) + "\n")
    return path


@pytest.fixture
def roots(tmp_path) -> dict[str, Path]:
    """Fake extracted packages, keyed by package name as in ``packages.PACKAGES``."""
    roots = {name: tmp_path / "packages" / name for name in packages.PACKAGES}
    make_emoji(roots["emoji-datasource-google"])
    make_tuxpaint(roots["tuxpaint-stamps-default"])
    make_openclipart(roots["openclipart-svg"], roots["openclipart-png"])
    make_desktop(roots["sound-theme-freedesktop"])
    make_arcade(roots["arcade"])
    make_speech(roots["asterisk-core-sounds-en-wav"], roots["asterisk-core-sounds-en"])
    make_wordlist(roots["wamerican"])
    return roots


@pytest.fixture
def english() -> EnglishWords:
    return EnglishWords.from_words(WORDS)


def fake_instrument(program: int, variant: int) -> tuple[int, np.ndarray]:
    """Stands in for the soundfont: a tone per program (silent for program 1, to be dropped)."""
    t = np.arange(RATE) / RATE
    amplitude = 0.0 if program == 1 else 0.3
    return RATE, (amplitude * np.sin(2 * np.pi * (220 + program) * (1 + variant) * t)).astype(
        np.float32
    )


def all_candidates(roots, english):
    settings = SourceSettings(soundfont_variants=2, english=english)
    names = [name for name in SOURCES if name != "soundfont"]
    found, errors = collect_candidates(names, roots, settings)
    assert errors == {}
    return found + list(soundfont.candidates(roots, settings, renderer=fake_instrument))


# ---- captions --------------------------------------------------------------------------


def test_clean_caption_and_concept():
    assert clean_caption("\u201cA red Fire Truck.\u201d  ") == "a red fire truck"
    assert clean_caption("A cow. It says moo.", first_sentence=True) == "a cow"
    assert clean_caption("Caf\u00e9 (open)!") == "cafe open"
    assert clean_caption("press * then #") == "press star then pound"
    assert concept_of("a red fire truck") == "red fire truck"
    assert concept_of("the letter a") == "letter a"
    assert concept_of("a") == "a"
    assert split_words("phaseJump1") == ["phase", "jump"]
    assert split_words("star_28pt03step") == ["star"]


def test_english_check_drops_italian_and_boilerplate(english):
    assert english.is_english("old horse")
    assert english.is_english("Horse")
    assert not english.is_english("cavallo")
    assert not english.is_english("horse di star")  # "di" is in many English lists
    assert not english.is_english("star icon")  # filing words, not content
    assert not english.is_english("caf\u00e9")
    assert not english.is_english("a")  # too short to say anything
    assert english.strip_trailing_names(["dog", "drawn", "with", "strai"]) == ["dog", "drawn"]


# ---- media -----------------------------------------------------------------------------


def test_image_tile_is_128_rgb_on_white_from_rgba(tmp_path):
    path = write_drawing(tmp_path / "d.png", (300, 100), colour=(0, 0, 255, 255))
    tile, side = image_tile(path)
    pixels = np.asarray(tile)
    assert tile.size == (128, 128) and tile.mode == "RGB"
    assert (pixels[0, 0] == 255).all() and (pixels[-1, -1] == 255).all()  # transparent → white
    assert tuple(pixels[64, 64]) == (0, 0, 255)
    ink = np.flatnonzero((pixels < 200).any(axis=2).any(axis=0))
    assert ink[0] <= 5 and ink[-1] >= 122  # the wide drawing fills the width, less the margin
    assert side == 280  # the rectangle's width in the source, from x = 10 to 289
    with pytest.raises(SkipItem, match="blank"):
        to_tile(Image.new("RGBA", (50, 50), (0, 0, 0, 0)))


def test_svg_renders_to_a_tile(tmp_path):
    path = tmp_path / "r.svg"
    path.write_text(svg("a rectangle", "red"))
    tile, side = image_tile(path)
    pixels = np.asarray(tile)
    assert pixels.shape == (128, 128, 3) and tuple(pixels[64, 64]) == (255, 0, 0) and side > 128  # rendered 256 wide


def test_sound_clip_is_2s_mono_22050(tmp_path):
    long_stereo = sound_clip(write_sine(tmp_path / "a.wav", 3.0, rate=44100, channels=2))
    short = sound_clip(write_sine(tmp_path / "b.ogg", 0.5, rate=8000))
    for clip in (long_stereo, short):
        assert clip.shape == (CLIP_SAMPLES,) and clip.dtype == np.float32
        assert 0.85 < np.abs(clip).max() < 0.9  # peak-normalised to -1 dBFS
    assert np.abs(short[int(0.6 * 22050) :]).max() == 0.0  # padded with silence
    with pytest.raises(SkipItem, match="silent"):
        sound_clip((22050, np.zeros(22050, dtype=np.float32)))
    with pytest.raises(SkipItem, match="silent"):
        sound_clip((22050, np.full(22050, 1e-4, dtype=np.float32)))  # -80 dBFS hum
    with pytest.raises(SkipItem, match="too_long"):
        sound_clip(write_sine(tmp_path / "c.wav", 4.0), max_seconds=2.5)


# ---- sources ---------------------------------------------------------------------------


def test_sources_read_their_package_layouts(roots, english):
    by_source = {}
    for candidate in all_candidates(roots, english):
        by_source.setdefault(candidate.source, {})[candidate.key] = candidate
    emoji = by_source["emoji"]
    assert sorted(c.caption for c in emoji.values()) == ["grinning face", "violin"]
    assert emoji["1f3bb"].category == "objects"
    tux = by_source["tuxpaint"]
    assert tux["animals/farm/cow"].caption == "a cow" and tux["animals/farm/cow"].concept == "cow"
    assert (
        tux["animals/farm/cow"].sound.name == "cow.ogg"
        and tux["animals/farm/cow"].category == "animals"
    )
    assert tux["music/violin"].image.suffix == ".svg" and tux["music/violin"].sound is None
    assert tux["town/bell"].image is None and tux["town/bell"].sound is not None
    clips = {c.key: c.caption for c in by_source["openclipart"].values()}
    assert clips == {
        "animals/horse_kate_smith_01": "horse",
        "shapes/stars/star_28pt03step": "star",
        "shapes/stars/star_31pt05step": "star",
        "animals/dog_01_drawn_with_strai_03": "dog drawn",
    }  # no "cavallo", no "gramastar", no chipmunk title on the dog, no "contour" (not English here)
    assert by_source["openclipart"]["animals/horse_kate_smith_01"].image.suffix == ".png"
    desktop = by_source["desktop"]
    assert (
        desktop["bell"].licence == "CC-BY-3.0"
        and desktop["phone-incoming-call"].licence == "GPL-2+"
    )
    assert desktop["phone-incoming-call"].concept == "telephone"
    arcade = by_source["arcade"]
    assert (
        sorted(arcade) == ["coin1", "coin2", "phaseJump1"]
        and arcade["coin1"].sound.suffix == ".wav"
    )
    assert arcade["phaseJump1"].caption == "phase jump" and arcade["coin2"].concept == "coin"
    assert sorted(c.caption for c in by_source["speech"].values()) == [
        "one",
        "please hold the line",
    ]
    assert len(by_source["soundfont"]) == 2 * (
        len(INSTRUMENTS) + 1
    )  # two registers, plus the drum kit
    assert by_source["soundfont"]["041-violin/0"].concept == "violin"


def test_huge_clip_art_png_falls_back_to_svg(tmp_path):
    Image.new("1", (4100, 4100)).save(tmp_path / "huge.png")  # 10562x16000 exist in the package
    Image.new("1", (400, 400)).save(tmp_path / "small.png")
    assert openclipart.is_small_raster(tmp_path / "small.png")
    assert not openclipart.is_small_raster(tmp_path / "huge.png")
    assert not openclipart.is_small_raster(tmp_path / "missing.png")


def test_a_failing_source_is_reported_not_fatal(roots):
    roots["timgm6mb-soundfont"].mkdir(parents=True)  # extracted, but without the .sf2 file
    found, errors = collect_candidates(["soundfont", "arcade"], roots, SourceSettings())
    assert "No soundfont" in errors["soundfont"] and {c.source for c in found} == {"arcade"}
    _, errors = collect_candidates(["desktop"], {}, SourceSettings())
    assert errors == {"desktop": "package(s) not fetched: sound-theme-freedesktop"}


def test_general_midi_table():
    assert len(INSTRUMENTS) == 128 and len(FAMILIES) == 16
    assert soundfont.instrument_caption("Electric Guitar (jazz)", 26) == "jazz electric guitar"
    assert soundfont.instrument_caption("Pad 2 (warm)", 89) == "warm synth pad"


def test_debian_copyright_licences(roots):
    stanzas = read_copyright(
        roots["sound-theme-freedesktop"] / "usr/share/doc/sound-theme-freedesktop/copyright"
    )
    assert stanzas == [
        (["stereo/bell.oga", "stereo/complete.oga"], "CC-BY-3.0"),
        (["stereo/phone-incoming-call.oga"], "GPL-2+"),
    ]
    assert licence_for("stereo/other.oga", stanzas, "unknown") == "unknown"


# ---- the build -------------------------------------------------------------------------


def test_build_corpus_end_to_end(roots, english, tmp_path):
    out = tmp_path / "corpus"
    options = BuildOptions(heldout_concepts=0.0, heldout_items=0.0)
    report = build_corpus(all_candidates(roots, english), out, options, english)
    items = {item.id: item for item in read_manifest(out)}
    assert len(items) == len(report.items)

    # every file named in the manifest exists and is normalised
    for item in items.values():
        assert (
            item.caption
            and item.concept
            and item.licence
            and item.package
            and item.split == "train"
        )
        if item.image:
            with Image.open(out / item.image) as image:
                assert image.size == (128, 128) and image.mode == "RGB" and item.image_side > 0
        if item.sound:
            info = soundfile.info(out / item.sound)
            assert (info.samplerate, info.channels, info.frames) == (22050, 1, CLIP_SAMPLES)

    # the Tux Paint cow is a triple; the silent stamp keeps its image only; the bell has only a sound
    cow = items["tuxpaint-animals-farm-cow"]
    assert cow.modalities == ("image", "sound", "text") and cow.origin.endswith(
        "animals/farm/cow.*"
    )
    assert items["tuxpaint-animals-quiet"].modalities == ("image", "text")
    assert items["tuxpaint-town-bell"].modalities == ("sound", "text")
    assert report.dropped["tuxpaint"]["sound_silent"] == 1
    assert (
        report.dropped["soundfont"]["sound_silent"] == 2
    )  # the silent fake program, both registers
    assert report.dropped["speech"]["sound_too_long"] == 1

    # the violin emoji's image and the soundfont violin's sound are joined under one concept
    joined = [item for item in items.values() if item.source == "join" and item.concept == "violin"]
    assert joined and all(item.modalities == ("image", "sound", "text") for item in joined)
    parents = {parent for item in joined for parent in item.parents}
    assert "emoji-1f3bb" in parents and any(p.startswith("soundfont-041-violin") for p in parents)
    assert {items[p].image for p in parents if items[p].image} == {item.image for item in joined}

    # the manifest line carries every field a trainer needs
    line = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert {"id", "concept", "category", "caption", "modalities", "image", "sound", "source", "package",
            "licence", "split", "origin", "parents"} <= set(line)  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["all"]["items"] == len(items)
    assert summary["counts"]["tuxpaint"]["modalities"]["image+sound+text"] == 1


def test_build_is_deterministic_and_caps(roots, english, tmp_path):
    options = BuildOptions(
        max_items={"soundfont": 10}, max_per_concept=1, heldout_concepts=0.3, heldout_items=0.5
    )
    first = build_corpus(all_candidates(roots, english), tmp_path / "a", options, english)
    second = build_corpus(all_candidates(roots, english), tmp_path / "b", options, english)
    assert (tmp_path / "a/manifest.jsonl").read_text() == (
        tmp_path / "b/manifest.jsonl"
    ).read_text()
    assert sum(item.source == "soundfont" for item in first.items) <= 10
    assert sum(item.source == "arcade" and item.concept == "coin" for item in first.items) == 1
    assert first.dropped["arcade"]["concept_cap"] == 1
    assert len(first.items) == len(second.items)


# ---- splits ----------------------------------------------------------------------------


def make_items(concepts: int = 60, per_concept: int = 4) -> list[Item]:
    items = [
        Item(id=f"s-{c}-{i}", concept=f"concept {c}", category="x", caption=f"concept {c}", source="s",
             package="p", licence="l", origin="o", image=f"images/{c}-{i}.png")
        for c in range(concepts)
        for i in range(per_concept)
    ]  # fmt: skip
    sounds = [
        Item(id=f"t-{c}", concept=f"concept {c}", category="x", caption=f"concept {c}", source="t",
             package="p", licence="l", origin="o", sound=f"sounds/{c}.wav")
        for c in range(0, concepts, 3)
    ]  # fmt: skip
    return items + sounds


def test_splits_are_deterministic_and_concept_disjoint():
    items = make_items()
    items += join_by_concept(items, max_per_concept=2)
    first = sorted(assign_splits(items, 0.2, 0.3, seed=7), key=lambda item: item.id)
    shuffled = sorted(assign_splits(items[::-1], 0.2, 0.3, seed=7), key=lambda item: item.id)
    assert first == shuffled  # the order items arrive in changes nothing
    concepts = {split: {item.concept for item in first if item.split == split} for split in SPLITS}
    assert concepts["heldout_concept"] and concepts["heldout_item"]
    assert not concepts["heldout_concept"] & (concepts["train"] | concepts["heldout_item"])
    assert concepts["heldout_item"] <= concepts["train"]  # held-out items are of seen concepts
    # a joined item and the items it took its media from are always in one split
    split_of = {item.id: item.split for item in first}
    for item in first:
        assert all(split_of[parent] == item.split for parent in item.parents)
    other_seed = sorted(assign_splits(items, 0.2, 0.3, seed=8), key=lambda item: item.id)
    assert [item.split for item in other_seed] != [item.split for item in first]


def test_splits_with_nothing_held_out_and_bad_fractions():
    items = make_items(5, 2)
    assert {item.split for item in assign_splits(items, 0.0, 0.0)} == {"train"}
    with pytest.raises(ValueError, match="heldout_concepts"):
        assign_splits(items, heldout_concepts=1.5)


# ---- fetching and the command line -----------------------------------------------------


def test_fetch_extracts_once_and_reuses(tmp_path, monkeypatch):
    source = tmp_path / "src/package"
    source.mkdir(parents=True)
    (source / "emoji.json").write_text("[]")
    archive = tmp_path / "emoji-datasource-google-1.0.0.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="package")
    calls = []
    monkeypatch.setitem(
        packages._DOWNLOADERS, "npm", lambda name, downloads: calls.append(name) or archive
    )
    cache = tmp_path / "cache"
    folder = packages.fetch("emoji-datasource-google", cache)
    assert (folder / "package/emoji.json").is_file() and packages.is_fetched(
        cache, "emoji-datasource-google"
    )
    assert packages.fetch("emoji-datasource-google", cache) == folder and calls == [
        "emoji-datasource-google"
    ]
    with pytest.raises(ValueError, match="Unknown package"):
        packages.fetch("not-a-package", cache)


def test_cli_builds_offline_from_the_cache(roots, tmp_path, capsys):
    for folder in roots.values():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / packages.COMPLETE_MARK).write_text("fake\n")
    out = tmp_path / "corpus"
    sources = ["tuxpaint", "emoji", "openclipart", "desktop", "arcade", "speech"]
    status = main(
        ["--cache", str(tmp_path), "--out", str(out), "--offline", "-q", "--sources", *sources]
    )
    printed = capsys.readouterr().out
    assert status == 0 and "tuxpaint" in printed and "FAILED" not in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["all"]["items"] == len(read_manifest(out)) > 10
    assert summary["corpus_bytes"] > 0 and summary["fetch_errors"] == {}
