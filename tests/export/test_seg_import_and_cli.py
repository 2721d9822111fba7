"""DICOM SEG import through the app's loader, and the `deepoxymap export` / `report` commands."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepoxymap.case import Role
from deepoxymap.export import DICOM_KINDS, export_names


def _bytes(ds: Any) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


class TestSegImport:
    def test_scar_seg_lands_on_its_lge_series(self, raw_bundle: Any, analysis: Any, known_subject: Path) -> None:
        """A SEG loaded with its study becomes the LGE series' label map (scar label 4), pixel for pixel."""
        from deepoxymap.io import build_case
        from deepoxymap.io.seg import load

        res = load([str(known_subject / "dicom"), ("scar_seg.dcm", raw_bundle.data("seg_scar"))])
        infos = [i for i in res.issues if i.file == "scar_seg.dcm"]
        assert [i.severity for i in infos] == ["info"], [i.message for i in infos]
        case = build_case(res.series)
        lge = case.first(Role.LGE)
        mask = case.mask_for(lge.uid)
        assert mask is not None and mask.data.shape[2:] == lge.stack.geometry.shape
        np.testing.assert_array_equal(mask.data[:, 0] == 4, analysis.scar.mask)

    def test_a_cropped_seg_is_resampled_by_geometry(self, analysis: Any, known_subject: Path, index: Any) -> None:
        """A SEG on a cropped grid of only some slices is mapped through patient mm onto the full series grid."""
        import highdicom as hd
        from pydicom.sr.codedict import codes

        from deepoxymap.export.dicom_objects import lesion_sources
        from deepoxymap.io import build_case
        from deepoxymap.io.seg import load

        lesion = analysis.scar
        src = lesion_sources(lesion, index)
        k = int(np.argmax(lesion.mask.sum(axis=(1, 2))))
        r0, c0 = 10, 7
        crop = lesion.mask[k, r0:, c0:]
        g = lesion.series.stack.geometry
        origin = g.pixel_to_patient(k, r0, c0)
        desc = hd.seg.SegmentDescription(
            segment_number=1, segment_label="infarct", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Scar, algorithm_type="MANUAL")  # fmt: skip
        seg = hd.seg.Segmentation(
            source_images=[src[k]], pixel_array=crop[None].astype(np.uint8), segmentation_type="BINARY",
            segment_descriptions=[desc], series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="0",
            device_serial_number="0", plane_positions=[hd.PlanePositionSequence("PATIENT", origin.tolist())],
            pixel_measures=hd.PixelMeasuresSequence(g.pixel_spacing, g.slice_thickness or 8.0),
            omit_empty_frames=False)  # fmt: skip
        res = load([str(known_subject / "dicom"), ("cropped.dcm", _bytes(seg))])
        case = build_case(res.series)
        got = case.mask_for(case.first(Role.LGE).uid).data[:, 0] == 4
        want = np.zeros_like(lesion.mask)
        want[k] = lesion.mask[k]
        np.testing.assert_array_equal(got, want)

    def test_a_seg_of_no_cardiac_structure_is_reported(self, raw_bundle: Any, known_subject: Path) -> None:
        """The thresholded-CAM SEG is no reference mask: an error issue naming the file, the images still load."""
        from deepoxymap.io.seg import load

        res = load([str(known_subject / "dicom"), ("cam_seg.dcm", raw_bundle.data("seg_cam"))])
        bad = [i for i in res.issues if i.file == "cam_seg.dcm"]
        assert len(bad) == 1 and bad[0].severity == "error" and "cardiac structure" in bad[0].message
        assert len([s for s in res.series if s.role == Role.LGE]) == 1

    def test_a_seg_without_its_series_is_reported(self, raw_bundle: Any) -> None:
        """A SEG alone cannot be placed: the message says to load it with its images."""
        from deepoxymap.io.seg import load

        res = load([("alone.dcm", raw_bundle.data("seg_scar"))])
        assert res.series == []
        assert "matches this SEG" in res.issues[0].message and res.issues[0].file == "alone.dcm"


@pytest.mark.slow
class TestCommands:
    def test_export_writes_every_file_under_the_app_names(self, known_subject: Path, tmp_path: Path,
                                                           loaded_model: Any) -> None:  # fmt: skip
        """`deepoxymap export PATH --out DIR` writes the PM, the SEGs, the SR and the PDF, de-identified."""
        import pacs_server
        import pydicom

        from deepoxymap.cli import main

        assert main(["export", str(known_subject), "--out", str(tmp_path / "out")]) == 0
        names = export_names("SUBJECT002")
        written = {p.name for p in (tmp_path / "out").iterdir()}
        assert written == {names[k] for k in (*DICOM_KINDS, "report")}
        sr = pydicom.dcmread(tmp_path / "out" / names["sr"])
        assert str(sr.PatientName) != pacs_server.KNOWN_NAME
        assert main(["export", str(known_subject), "--out", str(tmp_path / "kept"), "--keep-identifiers"]) == 0
        kept = pydicom.dcmread(tmp_path / "kept" / names["sr"])
        assert str(kept.PatientName) == pacs_server.KNOWN_NAME

    def test_report_writes_the_pdf(self, known_subject: Path, tmp_path: Path, loaded_model: Any) -> None:
        """`deepoxymap report CASE --out F.pdf` writes a one-page PDF."""
        from deepoxymap.cli import main

        out = tmp_path / "r" / "case.pdf"
        assert main(["report", str(known_subject), "--out", str(out)]) == 0
        assert out.read_bytes().startswith(b"%PDF")
