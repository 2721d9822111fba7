"""Domain errors.

Every error that reaches a user is a :class:`DeepOxyMapError`: it names the
thing that was wrong (a file, a series, a model) and, where possible, what to
do about it. Library exceptions (pydicom, nibabel, keras, zipfile) are wrapped
at the I/O boundary; they never leak into pages.
"""

from __future__ import annotations


class DeepOxyMapError(Exception):
    """Base class of every DeepOxyMap error.

    Args:
        message: what went wrong, in words a clinician understands.
        source: the file, series or object the error is about (shown first).
        hint: what the user can do about it (optional).
    """

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.source = source
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}" if self.source else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class DicomReadError(DeepOxyMapError):
    """A file could not be read as a usable DICOM image."""


class NiftiReadError(DeepOxyMapError):
    """A file could not be read as a usable NIfTI image."""


class ArchiveError(DeepOxyMapError):
    """A zip archive was unsafe (path traversal, bomb) or unreadable."""


class CaseError(DeepOxyMapError):
    """A case or stack is inconsistent or lacks what an operation needs."""


class GeometryError(CaseError):
    """Geometry is missing or incompatible (e.g. planes not parallel)."""


class PhantomError(DeepOxyMapError):
    """The synthetic cohort generator was given an impossible configuration."""


class ModelLoadError(DeepOxyMapError):
    """A model file or model card is missing, corrupt or does not match."""


class WeightsUnavailableError(ModelLoadError):
    """Pretrained weights could not be downloaded or found locally."""


class ExplainError(DeepOxyMapError):
    """A feature map could not be computed (bad layer, bad class...)."""


class SegmentationFile(DicomReadError):
    """A DICOM Segmentation (SEG) file: not an image, read with its series by :mod:`deepoxymap.io.seg`.

    Attributes:
        dataset: the parsed SEG dataset (``pydicom.Dataset``, Pixel Data read), or ``None``.
    """

    def __init__(
        self, message: str, *, source: str | None = None, hint: str | None = None, dataset: object = None
    ) -> None:
        self.dataset = dataset
        super().__init__(message, source=source, hint=hint)


class ExportError(DeepOxyMapError):
    """A DICOM object, a report or a de-identified copy could not be written."""


class PacsError(DeepOxyMapError):
    """A DICOMweb server could not be reached, refused the credentials or a request."""


class Unavailable(DeepOxyMapError):
    """What a view or command needs is not there yet (no model file, no mask, no OS-CMR series).

    The message says what is needed and how to get it; the app shows it as information,
    not as a failure.
    """
