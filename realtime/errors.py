"""Narrow exceptions of the real-time pipeline. Each message is one line naming the problem and the fix;
the CLI prints it once and exits non-zero."""
from __future__ import annotations


class StyleCamError(RuntimeError):
    """Base class: an error the user can act on."""


class ConfigError(StyleCamError, ValueError):
    """A flag or combination of flags that cannot be used."""


class SourceError(StyleCamError):
    """A camera, file or image that cannot be opened or read."""


class SegmentError(StyleCamError):
    """The person segmenter (MediaPipe) that cannot be built or run."""


class SinkError(StyleCamError):
    """A window, virtual camera or output file that cannot be opened or written."""


class WorkerError(StyleCamError):
    """An exception raised in a worker thread, carried to the main thread."""
