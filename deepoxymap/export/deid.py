"""De-identification of exported DICOM objects (dicognito), on by default.

Every DICOM object DeepOxyMap writes (:mod:`deepoxymap.export.bundle`) and every
push to a PACS not marked trusted (:meth:`deepoxymap.dicomweb.PacsClient.store`)
goes through :func:`deidentify` unless the user explicitly keeps identifiers.

What dicognito does (``Anonymizer.describe_actions()`` lists it): patient names
and every other PN are replaced by made-up names; PatientID, AccessionNumber and
other IDs by random IDs; dates and times are shifted by one random offset per
anonymizer; institution and equipment names and addresses are replaced; every
UID except class and transfer-syntax UIDs is replaced by a hash-derived ``2.``
UID; ``PatientIdentityRemoved`` is set and ``DICOGNITO`` is added to
``DeidentificationMethod``.

**One anonymizer per export.** UIDs are remapped by a keyed hash, so within
one call the same source UID always maps to the same new UID: the SR still
points at the SEG and the source images it references, every object still
shares one Study and one Frame of Reference. Two calls (two exports) map
differently, unless they share ``seed``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pydicom
from pydicom.dataset import Dataset

from deepoxymap.errors import ExportError

__all__ = ["IDENTIFYING_KEYWORDS", "deidentify", "identifiers_of"]

IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "OtherPatientNames",
    "AccessionNumber",
    "ReferringPhysicianName",
    "InstitutionName",
)
"""Header attributes whose source values must not survive de-identification (checked by the tests)."""


def identifiers_of(ds: Dataset) -> dict[str, str]:
    """The non-empty :data:`IDENTIFYING_KEYWORDS` of a dataset, as text."""
    out = {}
    for kw in IDENTIFYING_KEYWORDS:
        v = ds.get(kw)
        if v not in (None, ""):
            out[kw] = str(v)
    return out


def deidentify(datasets: Sequence[Dataset], *, seed: str | None = None) -> list[Dataset]:
    """De-identified copies of ``datasets``, with UIDs consistent across them (one dicognito anonymizer).

    Args:
        datasets: the objects of one export (the inputs are not modified).
        seed: makes the result reproducible (tests); ``None``: a fresh random key per call.

    Returns:
        one de-identified copy per input, in order; ``file_meta``'s
        MediaStorageSOPInstanceUID follows the new SOPInstanceUID.

    Raises:
        ExportError: dicognito failed on an object (the message names its SOP class).
    """
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer(seed=seed)
    out: list[Dataset] = []
    for ds in datasets:
        # A written-and-read copy: every value as it will be stored (highdicom keeps dates as
        # ``datetime.date`` objects, which dicognito cannot shift), the input untouched.
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        c = pydicom.dcmread(io.BytesIO(buf.getvalue()))
        try:
            anonymizer.anonymize(c)
        except Exception as exc:  # noqa: BLE001 - dicognito raises plain exceptions on odd values
            kind = str(getattr(c, "SOPClassUID", "object"))
            raise ExportError(f"de-identification failed ({type(exc).__name__}: {exc})", source=kind) from None
        if "SOPInstanceUID" in c:
            c.file_meta.MediaStorageSOPInstanceUID = c.SOPInstanceUID
        out.append(c)
    return out
