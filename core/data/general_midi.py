"""The 128 General MIDI instruments: program name, family and the plain concept each one sounds like.

The concept is what a person would call the sound, so that items join across sources by
name ("Violin" and "Fiddle" → violin, "Acoustic Grand Piano" → piano); synthesiser patches
are named by their kind ("synth pad"). Program numbers are 0-based (the GM list is 1-based).
"""

from __future__ import annotations

FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects",
)  # fmt: skip

# (GM name, concept), in program order: eight per family.
INSTRUMENTS = (
    ("Acoustic Grand Piano", "piano"), ("Bright Acoustic Piano", "piano"),
    ("Electric Grand Piano", "piano"), ("Honky-tonk Piano", "piano"),
    ("Electric Piano 1", "electric piano"), ("Electric Piano 2", "electric piano"),
    ("Harpsichord", "harpsichord"), ("Clavinet", "clavinet"),
    ("Celesta", "celesta"), ("Glockenspiel", "glockenspiel"), ("Music Box", "music box"),
    ("Vibraphone", "vibraphone"), ("Marimba", "marimba"), ("Xylophone", "xylophone"),
    ("Tubular Bells", "bell"), ("Dulcimer", "dulcimer"),
    ("Drawbar Organ", "organ"), ("Percussive Organ", "organ"), ("Rock Organ", "organ"),
    ("Church Organ", "organ"), ("Reed Organ", "organ"), ("Accordion", "accordion"),
    ("Harmonica", "harmonica"), ("Tango Accordion", "accordion"),
    ("Acoustic Guitar (nylon)", "guitar"), ("Acoustic Guitar (steel)", "guitar"),
    ("Electric Guitar (jazz)", "electric guitar"), ("Electric Guitar (clean)", "electric guitar"),
    ("Electric Guitar (muted)", "electric guitar"), ("Overdriven Guitar", "electric guitar"),
    ("Distortion Guitar", "electric guitar"), ("Guitar Harmonics", "guitar"),
    ("Acoustic Bass", "double bass"), ("Electric Bass (finger)", "bass guitar"),
    ("Electric Bass (pick)", "bass guitar"), ("Fretless Bass", "bass guitar"),
    ("Slap Bass 1", "bass guitar"), ("Slap Bass 2", "bass guitar"),
    ("Synth Bass 1", "synth bass"), ("Synth Bass 2", "synth bass"),
    ("Violin", "violin"), ("Viola", "viola"), ("Cello", "cello"), ("Contrabass", "double bass"),
    ("Tremolo Strings", "strings"), ("Pizzicato Strings", "strings"),
    ("Orchestral Harp", "harp"), ("Timpani", "timpani"),
    ("String Ensemble 1", "strings"), ("String Ensemble 2", "strings"),
    ("Synth Strings 1", "synth strings"), ("Synth Strings 2", "synth strings"),
    ("Choir Aahs", "choir"), ("Voice Oohs", "choir"), ("Synth Voice", "synth voice"),
    ("Orchestra Hit", "orchestra"),
    ("Trumpet", "trumpet"), ("Trombone", "trombone"), ("Tuba", "tuba"), ("Muted Trumpet", "trumpet"),
    ("French Horn", "french horn"), ("Brass Section", "brass"),
    ("Synth Brass 1", "synth brass"), ("Synth Brass 2", "synth brass"),
    ("Soprano Sax", "saxophone"), ("Alto Sax", "saxophone"), ("Tenor Sax", "saxophone"),
    ("Baritone Sax", "saxophone"), ("Oboe", "oboe"), ("English Horn", "english horn"),
    ("Bassoon", "bassoon"), ("Clarinet", "clarinet"),
    ("Piccolo", "piccolo"), ("Flute", "flute"), ("Recorder", "recorder"), ("Pan Flute", "pan flute"),
    ("Blown Bottle", "bottle"), ("Shakuhachi", "shakuhachi"), ("Whistle", "whistle"),
    ("Ocarina", "ocarina"),
    ("Lead 1 (square)", "synth lead"), ("Lead 2 (sawtooth)", "synth lead"),
    ("Lead 3 (calliope)", "synth lead"), ("Lead 4 (chiff)", "synth lead"),
    ("Lead 5 (charang)", "synth lead"), ("Lead 6 (voice)", "synth lead"),
    ("Lead 7 (fifths)", "synth lead"), ("Lead 8 (bass + lead)", "synth lead"),
    ("Pad 1 (new age)", "synth pad"), ("Pad 2 (warm)", "synth pad"),
    ("Pad 3 (polysynth)", "synth pad"), ("Pad 4 (choir)", "synth pad"),
    ("Pad 5 (bowed)", "synth pad"), ("Pad 6 (metallic)", "synth pad"),
    ("Pad 7 (halo)", "synth pad"), ("Pad 8 (sweep)", "synth pad"),
    ("FX 1 (rain)", "synth effect"), ("FX 2 (soundtrack)", "synth effect"),
    ("FX 3 (crystal)", "synth effect"), ("FX 4 (atmosphere)", "synth effect"),
    ("FX 5 (brightness)", "synth effect"), ("FX 6 (goblins)", "synth effect"),
    ("FX 7 (echoes)", "synth effect"), ("FX 8 (sci-fi)", "synth effect"),
    ("Sitar", "sitar"), ("Banjo", "banjo"), ("Shamisen", "shamisen"), ("Koto", "koto"),
    ("Kalimba", "kalimba"), ("Bagpipe", "bagpipe"), ("Fiddle", "violin"), ("Shanai", "shehnai"),
    ("Tinkle Bell", "bell"), ("Agogo", "agogo"), ("Steel Drums", "steel drum"),
    ("Woodblock", "wood block"), ("Taiko Drum", "drum"), ("Melodic Tom", "drum"),
    ("Synth Drum", "drum"), ("Reverse Cymbal", "cymbal"),
    ("Guitar Fret Noise", "guitar"), ("Breath Noise", "breath"), ("Seashore", "seashore"),
    ("Bird Tweet", "bird"), ("Telephone Ring", "telephone"), ("Helicopter", "helicopter"),
    ("Applause", "applause"), ("Gunshot", "gunshot"),
)  # fmt: skip


def family(program: int) -> str:
    """The GM family of a 0-based program number."""
    return FAMILIES[program // 8]
