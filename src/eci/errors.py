"""One error hierarchy for eci.

Every error carries a message that shows the offending value and says what to do about it.
The CLI prints ``str(error)`` and exits non-zero; nothing else is needed to explain a failure.
"""

from __future__ import annotations


class EciError(Exception):
    """Base of every error eci raises on purpose; anything else is a bug."""


class SettingsError(EciError):
    """A settings file is missing, unreadable or invalid.

    Raised before anything is started, so fixing the file and re-running is always safe.
    """

    def __init__(self, file: str, json_path: str, reason: str) -> None:
        self.file = file
        self.json_path = json_path
        self.reason = reason
        super().__init__(f"{file}: {json_path}: {reason}")


class EngineError(EciError):
    """The embedded engine could not be started, stopped or reached.

    The message names the component and where its log is; ``eci down`` is always safe to run.
    """


class ImageBuildError(EciError):
    """A test image could not be built, pushed or pulled back."""
