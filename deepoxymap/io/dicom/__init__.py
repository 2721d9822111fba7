"""DICOM files -> geometry-carrying series.

Pipeline (all pure functions over in-memory datasets):

1. :func:`read_header` (:mod:`.header`) parses one file with ``defer_size`` so
   that large values (the Pixel Data) are *not* read yet: the header is parsed
   once and the pixels are fetched later only for files that are used. The
   header is validated before anything is decoded (image SOP class, a positive
   NumberOfFrames, the decoded size within ``max_image_bytes`` for every
   transfer syntax, the frames fitting the bytes present, file not truncated,
   a decoder exists for the transfer syntax); deflated files are inflated
   under the same limit, a DICOMDIR is :class:`IgnoredFile`.
2. :func:`frames_of` (:mod:`.frames`) turns a header into per-frame records
   (single-frame files give one; multi-frame files one per frame, with
   per-frame functional groups where present); :func:`all_frames`
   (:mod:`.inventory`) does it for every file and sorts out duplicate
   SOPInstanceUIDs (identical: info; conflicting: both kept, warning).
3. :func:`assemble` (:mod:`.assembly`) groups frames by SeriesInstanceUID and
   in-plane geometry, clusters slices by ImagePositionPatient projected on the
   slice normal (``ImageOrientationPatient`` row x column cosine), orders
   frames by TriggerTime, splits repeated acquisitions (same position and
   trigger time, different AcquisitionTime) into separate stacks, sorts slices
   base to apex, and only then decodes the pixels (:func:`decode` in
   :mod:`.pixels`: ``pydicom.pixels`` decoders, modality LUT, MONOCHROME1)
   straight into the float32 stack, frame by frame, releasing each file's raw
   Pixel Data once its stack is built. Each stack is counted against the
   load's limits before it is allocated. A file that fails to decode is
   reported and the stack is rebuilt without it; non-finite values are a
   warning naming the file.

File names and InstanceNumber are only ever tie-breakers. Element readers
shared by the steps live in :mod:`.values`; the default display window of a
stack without one is :func:`deepoxymap.case.robust_window`.
"""

from __future__ import annotations

from deepoxymap.io.dicom.assembly import SLICE_TOL_MM, assemble
from deepoxymap.io.dicom.frames import Frame, frames_of
from deepoxymap.io.dicom.header import DicomHeader, IgnoredFile, quiet_pydicom, read_header
from deepoxymap.io.dicom.inventory import DicomProblem, all_frames
from deepoxymap.io.dicom.pixels import decode
from deepoxymap.io.dicom.values import parse_tm

__all__ = [
    "SLICE_TOL_MM",
    "DicomHeader",
    "DicomProblem",
    "Frame",
    "IgnoredFile",
    "all_frames",
    "assemble",
    "decode",
    "frames_of",
    "parse_tm",
    "quiet_pydicom",
    "read_header",
]
