"""The offline training corpus: fetching its packages, normalising media, captions, joins, splits, manifest.

``studio-data`` (``cli.py``) runs it all; ``read_manifest`` reads a built corpus.
"""

from .corpus import BuildOptions, BuildReport, build_corpus, collect_candidates
from .manifest import Item, read_manifest, write_manifest

__all__ = [
    "BuildOptions",
    "BuildReport",
    "Item",
    "build_corpus",
    "collect_candidates",
    "read_manifest",
    "write_manifest",
]
