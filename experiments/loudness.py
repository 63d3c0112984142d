"""Loudness and peaks of the sounds the studio makes from the example images, three seeds each.

    python experiments/loudness.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import load_studio
from core.audio import loudness_db

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def main() -> None:
    studio = load_studio("embedded")
    spreads, peaks = [], []
    for path in sorted(EXAMPLES.glob("*.png")):
        sounds = [wave for _, wave in studio.generate("audio", image=str(path), seed=0, num=3).outputs]
        levels, tops = [loudness_db(w) for w in sounds], [float(np.abs(w).max()) for w in sounds]
        spreads.append(max(levels) - min(levels))
        peaks += tops
        print(path.name, "loudness dBFS", [f"{x:.1f}" for x in levels], "peaks", [f"{x:.3f}" for x in tops], flush=True)
    print(f"spread between seeds: median {np.median(spreads):.2f} dB, max {max(spreads):.2f} dB; highest peak {max(peaks):.3f}")


if __name__ == "__main__":
    main()
