"""DICOM exports: valid for dciodvfy, read back by highdicom with their values, correctly referenced."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pacs_server
import pydicom
import pytest

from deepoxymap.export import DICOM_KINDS, export_names

DCIODVFY = shutil.which("dciodvfy")


def _read(bundle: Any, kind: str) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(bundle.data(kind)))


def _frame_sources(ds: pydicom.Dataset) -> list[str]:
    """The source SOPInstanceUID of every frame (Derivation Image -> Source Image), in frame order."""
    out = []
    for item in ds.PerFrameFunctionalGroupsSequence:
        der = item.get("DerivationImageSequence") or ds.SharedFunctionalGroupsSequence[0].DerivationImageSequence
        out.append(str(der[0].SourceImageSequence[0].ReferencedSOPInstanceUID))
    return out


def pdf_text(data: bytes) -> str:
    """The text drawn on a matplotlib PDF (its TJ strings joined, Flate streams inflated)."""
    chunks = []
    for s in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        try:
            chunks.append(zlib.decompress(s))
        except zlib.error:
            continue
    text = []
    for arr in re.findall(rb"\[(.*?)\]\s*TJ", b"".join(chunks), re.DOTALL):
        text.append(b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", arr)).decode("latin-1"))
    return " ".join(text)


class TestValidity:
    @pytest.mark.parametrize("kind", DICOM_KINDS)
    def test_dciodvfy_reports_no_error(self, deid_bundle: Any, kind: str, tmp_path: Path) -> None:
        """`dciodvfy` finds no error in each exported object kind (as written: de-identified)."""
        if DCIODVFY is None:
            pytest.skip("dciodvfy not installed (Debian package dicom3tools; .ci/run installs it)")
        if kind not in deid_bundle.kinds:
            pytest.fail(f"{kind} missing from the export: {deid_bundle.notes}")
        f = tmp_path / deid_bundle.kinds[kind]
        f.write_bytes(deid_bundle.data(kind))
        r = subprocess.run([DCIODVFY, "-new", str(f)], capture_output=True, text=True, timeout=120, check=False)
        report = r.stdout + r.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert errors == [], "\n".join(errors)

    def test_names_are_the_app_names(self, deid_bundle: Any, analysis: Any) -> None:
        """Every kind is written under :func:`export_names` (the app's download names)."""
        names = export_names(analysis.case_id)
        assert set(deid_bundle.kinds) == {*DICOM_KINDS, "report"}
        for kind, name in deid_bundle.kinds.items():
            assert name == names[kind]
            assert name in deid_bundle.files


class TestRoundTrip:
    def test_parametric_map(self, raw_bundle: Any, analysis: Any, index: Any) -> None:
        """The CAM survives as float32, coded Class activation, one frame per source instance it references."""
        from highdicom.pm.sop import pmread
        from pydicom.sr.codedict import codes

        from deepoxymap.export.dicom_objects import oscmr_sources

        pm = pmread(io.BytesIO(raw_bundle.data("parametric_map")))
        src = oscmr_sources(analysis, index)
        arr = np.asarray(pm.pixel_array, dtype=np.float32).reshape(len(src), *analysis.stack.geometry.shape)
        by_uid = {str(d.SOPInstanceUID): i for i, d in enumerate(src)}
        for f, uid in enumerate(_frame_sources(pm)):
            np.testing.assert_array_equal(arr[f], analysis.cams[by_uid[uid]])
        rwvm = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert rwvm.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue == codes.DCM.ClassActivation.value
        assert pm.StudyInstanceUID == src[0].StudyInstanceUID
        assert pm.FrameOfReferenceUID == src[0].FrameOfReferenceUID
        refs = {
            str(i.ReferencedSOPInstanceUID) for s in pm.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence
        }
        assert refs == set(by_uid)

    def test_cam_segmentations(self, raw_bundle: Any, analysis: Any, index: Any) -> None:
        """BINARY = map >= threshold exactly; FRACTIONAL = the map within one 8-bit step."""
        import highdicom as hd

        from deepoxymap.export.dicom_objects import oscmr_sources

        uids = [str(d.SOPInstanceUID) for d in oscmr_sources(analysis, index)]
        binary = hd.seg.segread(io.BytesIO(raw_bundle.data("seg_cam")))
        assert binary.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
        got = binary.get_pixels_by_source_instance(uids, segment_numbers=[1])[..., 0]
        np.testing.assert_array_equal(got.astype(bool), analysis.cam_volume >= analysis.threshold)
        frac = hd.seg.segread(io.BytesIO(raw_bundle.data("seg_cam_fractional")))
        assert frac.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
        got_f = frac.get_pixels_by_source_instance(uids, segment_numbers=[1])[..., 0]
        assert float(np.max(np.abs(got_f - analysis.cam_volume))) <= 0.5 / 255 + 1e-6

    @pytest.mark.parametrize("kind", ["scar", "edema"])
    def test_lesion_segmentations(self, raw_bundle: Any, analysis: Any, index: Any, kind: str) -> None:
        """Scar (on LGE) and edema (on T2) masks survive, on their own series' instances."""
        import highdicom as hd

        from deepoxymap.export.dicom_objects import lesion_sources

        lesion = getattr(analysis, kind)
        assert lesion is not None, analysis.notes
        seg = hd.seg.segread(io.BytesIO(raw_bundle.data(f"seg_{kind}")))
        src = lesion_sources(lesion, index)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src[0].SeriesInstanceUID
        got = seg.get_pixels_by_source_instance([str(d.SOPInstanceUID) for d in src], segment_numbers=[1])[..., 0]
        np.testing.assert_array_equal(got.astype(bool), lesion.mask)

    def test_structured_report(self, raw_bundle: Any, analysis: Any) -> None:
        """Probabilities, call, model name/version, per-segment values, agreement and burden read back."""
        from deepoxymap.export.analysis import AGREEMENT_FIGURES, SEGMENT_QUANTITIES
        from deepoxymap.export.sr import read_measurements

        sr = _read(raw_bundle, "sr")
        assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        m = read_measurements(sr)
        for cls, p in analysis.probabilities().items():
            assert m["probabilities"][cls] == pytest.approx(p, abs=1e-6)
        assert m["call"] == analysis.call
        assert m["algorithm"] == (analysis.model_name, analysis.model_version)
        n_checked = 0
        for key, (name, _unit) in SEGMENT_QUANTITIES.items():
            for s in range(1, 18):
                v = float(analysis.segments[key][s - 1])
                if np.isfinite(v):
                    assert m["segments"][s][name] == pytest.approx(v, rel=1e-6, abs=1e-9)
                    n_checked += 1
        assert n_checked >= 5 * 12
        for key, v in analysis.agreement.items():
            assert m["agreement"][AGREEMENT_FIGURES[key][0]] == pytest.approx(v, rel=1e-6, abs=1e-9)
        assert m["burden"]["scar"] == pytest.approx(analysis.scar.percent_of_myocardium, rel=1e-6)

    def test_report_pdf(self, raw_bundle: Any, analysis: Any) -> None:
        """One page, the research-use banner, the call and the model's caveat."""
        pdf = raw_bundle.data("report")
        assert pdf.startswith(b"%PDF")
        assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
        text = pdf_text(pdf)
        assert "RESEARCH USE ONLY" in text
        assert f"Case call: {analysis.call}" in text
        assert "Caveats" in text and "synthetic" in text.lower()


class TestReferences:
    def test_deidentified_objects_stay_consistent(self, deid_bundle: Any) -> None:
        """After de-identification all objects share one Study; the SR still points at the scar SEG."""
        ds = {k: _read(deid_bundle, k) for k in DICOM_KINDS}
        assert len({d.StudyInstanceUID for d in ds.values()}) == 1
        assert ds["parametric_map"].FrameOfReferenceUID == ds["seg_cam"].FrameOfReferenceUID
        cam_sources = set(_frame_sources(ds["parametric_map"]))
        assert cam_sources == set(_frame_sources(ds["seg_cam"]))
        sr = ds["sr"]
        evidence = {
            str(i.ReferencedSOPInstanceUID)
            for seq in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")
            for st in sr.get(seq, [])
            for se in st.ReferencedSeriesSequence
            for i in se.ReferencedSOPSequence
        }
        assert cam_sources <= evidence
        assert ds["seg_scar"].SOPInstanceUID in evidence

    def test_two_exports_get_different_uids(self, analysis: Any, known_case: Any, index: Any) -> None:
        """Each export has its own de-identification key: the same object gets a new UID."""
        from deepoxymap.export import export_case

        a = export_case(analysis, known_case, index, with_report=False)
        b = export_case(analysis, known_case, index, with_report=False)
        assert a.datasets["sr"].StudyInstanceUID != b.datasets["sr"].StudyInstanceUID


class TestIdentifiers:
    KNOWN = (pacs_server.KNOWN_NAME, pacs_server.KNOWN_ID, pacs_server.KNOWN_ACCESSION)

    def test_deidentified_files_hold_no_source_identifier(self, deid_bundle: Any) -> None:
        """No exported file (DICOM or PDF) carries the source's patient name, ID or accession, as bytes."""
        for name, data in deid_bundle.files.items():
            for s in (*self.KNOWN, *pacs_server.KNOWN_NAME.split("^")):
                assert s.encode() not in data, f"{s!r} in {name}"
        for kind, ds in deid_bundle.datasets.items():
            assert str(ds.PatientName) != pacs_server.KNOWN_NAME, kind
            assert ds.PatientIdentityRemoved == "YES" or "DICOGNITO" in str(ds.get("DeidentificationMethod", ""))

    def test_identifiers_kept_on_request(self, raw_bundle: Any) -> None:
        """With keep_identifiers the source's patient name and ID are written."""
        for kind in DICOM_KINDS:
            ds = _read(raw_bundle, kind)
            assert str(ds.PatientName) == pacs_server.KNOWN_NAME, kind
            assert ds.PatientID == pacs_server.KNOWN_ID, kind
        assert pacs_server.KNOWN_NAME.encode() not in raw_bundle.data("report")


def test_contrastive_analysis_says_what_it_explains(known_case: Any, loaded_model: Any, analysis: Any) -> None:
    """``contrast=healthy``: other maps than the plain analysis, each row named "X vs healthy" (a healthy row plain)."""
    from deepoxymap.export import analyse_case

    h = loaded_model.classes.index("healthy")
    vs = analyse_case(known_case, loaded_model, contrast=h)
    assert len(vs.explained) == len(analysis.explained)
    for plain, got in zip(analysis.explained, vs.explained, strict=True):
        assert got == (plain if plain == "healthy" else f"{plain} vs healthy")
    if any(e != "healthy" for e in analysis.explained):
        assert any(not np.allclose(a, b) for a, b in zip(analysis.cams, vs.cams, strict=True))
