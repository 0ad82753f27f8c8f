"""Image-cache matching (SPEC §3): reference normalisation and the vectorised ``CacheIndex``.

Pure: numpy and the standard library only, no I/O, nothing else of this project.
"""

from matcher.index import CacheIndex
from matcher.match import Match
from matcher.reference import InvalidReference, normalize_image

__all__ = ["CacheIndex", "InvalidReference", "Match", "normalize_image"]
