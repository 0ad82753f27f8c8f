"""Image-cache matching: reference normalisation and the vectorised ``CacheIndex``.

Pure: numpy and the standard library only, no I/O, nothing else of this project.
"""

from matcher.index import CacheIndex
from matcher.match import Match
from matcher.reference import REFERENCE_MAX, InvalidReference, normalize_image

__all__ = ["REFERENCE_MAX", "CacheIndex", "InvalidReference", "Match", "normalize_image"]
