"""What one :func:`~deepoxymap.io.load` may read, expand, decode and keep: every input is bounded before it is expanded.

The limits are fields of :class:`deepoxymap.config.Settings`:

* ``max_upload_files``: most files (or zip members) one load reads;
* ``max_upload_bytes``: most bytes one load reads, counted after zip and gzip
  expansion, as the bytes stream in;
* ``max_zip_ratio``: largest expansion ratio of one zip member (over 1 MiB);
  ``max_archive_ratio``: of a whole archive (over :data:`ZIP_FREE_BYTES`);
* ``max_image_bytes``: most bytes one image file may decode to, from its
  header, before any decoder or decompressor runs (:func:`decoded_bytes`);
* ``max_frames``: most 2D images the headers of one load declare in total, and
  most images (slices x frames) in one stack; ``max_frames_per_file``: most
  frames one DICOM file declares (per-frame functional groups are slow to read);
* ``max_stack_bytes`` / ``max_load_bytes``: most float32 bytes of one stack /
  of all stacks of one load.

:class:`Budget` keeps the running totals of one load. Every refusal is a
:class:`~deepoxymap.errors.DeepOxyMapError` naming the file and the setting to
raise.
"""

from __future__ import annotations

from deepoxymap.config import Settings
from deepoxymap.errors import ArchiveError, CaseError, DeepOxyMapError, DicomReadError

__all__ = ["MIB", "ZIP_FREE_BYTES", "Budget", "decoded_bytes", "fmt_bytes", "image_too_large"]

MIB = 1024**2
"""Bytes in a mebibyte."""

ZIP_FREE_BYTES = 64 * MIB
"""An archive may always expand to this many bytes, whatever its compression ratio (masks of zeros compress well)."""


def fmt_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable size (``"1.5 GiB"``, ``"320 MiB"``, ``"12 KiB"``, ``"7 bytes"``)."""
    for unit, size in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if abs(n) >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{int(n)} bytes"


def decoded_bytes(n_values: int, bytes_per_value: float) -> int:
    """Bytes that decoding ``n_values`` values costs: the stored values, and at least float32 (the stack's dtype).

    Args:
        n_values: rows x columns x samples x frames (DICOM) or the product of
            the data shape (NIfTI).
        bytes_per_value: bytes of one stored value (``1/8`` for 1-bit DICOM).
    """
    return int(n_values * max(4.0, float(bytes_per_value)))


def image_too_large(
    n_values: int,
    bytes_per_value: float,
    settings: Settings,
    *,
    name: str,
    what: str,
    error: type[DeepOxyMapError] = DicomReadError,
) -> DeepOxyMapError | None:
    """The refusal of an image whose decoded size exceeds ``max_image_bytes``, or ``None`` when it fits.

    Args:
        n_values: number of values the header declares.
        bytes_per_value: stored bytes per value.
        settings: the limits.
        name: display name of the file.
        what: the declared size in words (``"65535 x 65535 pixels, 1 frame(s), 16 bits"``).
        error: the error class to return.
    """
    need = decoded_bytes(n_values, bytes_per_value)
    if need <= settings.max_image_bytes:
        return None
    return error(
        f"image too large: its header declares {what}, which would decode to {fmt_bytes(need)} "
        f"(as float32), more than the limit of {fmt_bytes(settings.max_image_bytes)} per file; not decoded",
        source=name,
        hint="raise max_image_bytes (DEEPOXYMAP_MAX_IMAGE_BYTES) if the file is genuine",
    )


class Budget:
    """Running totals of one load against the limits of :class:`~deepoxymap.config.Settings`.

    Attributes:
        settings: the limits.
        files: entries accepted so far.
        bytes: bytes read so far (after zip and gzip expansion).
        frames: 2D images declared by accepted DICOM headers so far.
        stack_bytes: float32 bytes of the stacks built so far.
        exhausted: ``"files"`` or ``"bytes"`` once reading has stopped, else ``None``.
        skipped: files not read because reading had stopped.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files = 0
        self.bytes = 0
        self.frames = 0
        self.stack_bytes = 0
        self.exhausted: str | None = None
        self.skipped = 0

    @property
    def bytes_left(self) -> int:
        """Bytes that may still be read (``max_upload_bytes`` minus what was read)."""
        return max(self.settings.max_upload_bytes - self.bytes, 0)

    def admit_file(self, name: str) -> DeepOxyMapError | None:
        """Count one more file; the refusal (and reading stops) once ``max_upload_files`` is reached."""
        if self.files + 1 > self.settings.max_upload_files:
            self.exhausted = "files"
            return ArchiveError(
                f"too many files: the limit is {self.settings.max_upload_files} files per upload; "
                "this file and every later one were not read",
                source=name,
                hint="upload fewer files at once or raise max_upload_files",
            )
        self.files += 1
        return None

    def too_many_bytes(self, name: str, size: int) -> DeepOxyMapError:
        """The refusal of a file of ``size`` bytes that does not fit ``max_upload_bytes`` (reading stops)."""
        self.exhausted = "bytes"
        return ArchiveError(
            f"upload too large: reading this file ({size} bytes) would exceed the limit of "
            f"{self.settings.max_upload_bytes} bytes in total; this file and every later one were not read",
            source=name,
            hint="upload fewer files at once or raise max_upload_bytes",
        )

    def take(self, name: str, size: int) -> DeepOxyMapError | None:
        """Account for one entry of ``size`` bytes (a file, an upload); the refusal once a limit is hit."""
        err = self.admit_file(name)
        if err is not None:
            return err
        if self.bytes + size > self.settings.max_upload_bytes:
            self.files -= 1
            return self.too_many_bytes(name, size)
        self.bytes += size
        return None

    def take_frames(self, name: str, n: int) -> DeepOxyMapError | None:
        """Account for the ``n`` frames one DICOM header declares; the refusal beyond ``max_frames``."""
        if self.frames + n > self.settings.max_frames:
            return DicomReadError(
                f"too many images: this file declares {n} frame(s), and with the {self.frames} already read "
                f"the upload would exceed the limit of {self.settings.max_frames} images; not read",
                source=name,
                hint="load fewer series at once or raise max_frames",
            )
        self.frames += n
        return None

    def take_stack(self, name: str, n_slices: int, n_frames: int, rows: int, cols: int) -> DeepOxyMapError | None:
        """Account for one float32 stack ``[n_slices, n_frames, rows, cols]`` before it is allocated.

        Returns:
            The refusal (``max_frames`` images per stack, ``max_stack_bytes``
            per stack or ``max_load_bytes`` in total), or ``None`` (the bytes
            are then counted).
        """
        s = self.settings
        images = n_slices * n_frames
        need = images * rows * cols * 4
        shape = f"{n_slices} slices x {n_frames} frames of {rows} x {cols}"
        if images > s.max_frames:
            return CaseError(
                f"stack too large: {shape} is {images} images, more than the limit of {s.max_frames}; not loaded",
                source=name,
                hint="raise max_frames if the series is genuine",
            )
        if need > s.max_stack_bytes:
            return CaseError(
                f"stack too large: {shape} needs {fmt_bytes(need)} as float32, more than the limit of "
                f"{fmt_bytes(s.max_stack_bytes)} per stack; not loaded",
                source=name,
                hint="raise max_stack_bytes if the series is genuine",
            )
        if self.stack_bytes + need > s.max_load_bytes:
            return CaseError(
                f"not loaded: {shape} needs {fmt_bytes(need)} as float32, and with the "
                f"{fmt_bytes(self.stack_bytes)} already loaded this exceeds the limit of "
                f"{fmt_bytes(s.max_load_bytes)} per load",
                source=name,
                hint="load fewer series at once or raise max_load_bytes",
            )
        self.stack_bytes += need
        return None
