"""One exception family for cryolab.

Every error a user can cause (a bad file, a missing data set, a wrong option) is raised as a
subclass of :class:`CryolabError` with a one-line message that names the file or the setting
and says what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CryolabError", "DataError", "FormatError", "ConfigError", "CheckpointError", "ItemsFailed",
]


class CryolabError(Exception):
    """Base class of every error cryolab raises on purpose."""


class DataError(CryolabError):
    """A registered data file is unknown, missing offline, or fails its checksum."""


class FormatError(CryolabError, ValueError):
    """A file is malformed: bad MRC header, truncated data, unreadable PDB/mmCIF, NaNs."""


class ConfigError(CryolabError, ValueError):
    """An option or configuration value is impossible (unknown method, bad tilt range, ...)."""


class CheckpointError(CryolabError):
    """A checkpoint is missing, unreadable, or was written for another architecture."""


class ItemsFailed(CryolabError):
    """Some items of a fanned-out set (tomograms, AFM view sets, maps) failed; the message
    lists their indices, and a re-run makes only the missing ones."""
