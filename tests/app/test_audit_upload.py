"""Cohort zips for the Cohort audit page: unpacked through the loader's zip reader, paths kept inside the upload."""

from __future__ import annotations

import gc
import json
import zipfile
from pathlib import Path

import pytest
from app_helpers import make_cohort_zip

from deepoxymap.config import ROOT, Settings, load_settings
from deepoxymap.errors import ArchiveError, CaseError
from deepoxymap.ui.audit_view import extract_cohort_zip

MANIFEST = "subject,class,path,mask_lesion\nS1,healthy,S1,S1/lesion.nii.gz\nS2,edema,sub/S2,\n"


def _subjects(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for rel in ("S1/dicom/a.dcm", "S1/lesion.nii.gz", "sub/S2/dicom/b.dcm"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"not read here")
    return src


def _zip_bytes(tmp_path: Path, manifest: str = MANIFEST, **kw: object) -> bytes:
    return make_cohort_zip(tmp_path / "c.zip", manifest, _subjects(tmp_path), **kw).read_bytes()  # type: ignore[arg-type]


def _zip_tree(tmp_path: Path, manifest: str) -> bytes:
    """manifest.csv plus every file of the subject tree once (rows may name a folder twice, or none)."""
    src = _subjects(tmp_path)
    path = tmp_path / "tree.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.csv", manifest)
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())
    return path.read_bytes()


def test_extracts_a_cohort_zip_into_a_temporary_folder(tmp_path: Path) -> None:
    """manifest.csv one folder down is found; subject and mask paths resolve inside the temporary folder."""
    up = extract_cohort_zip("cohort.zip", _zip_bytes(tmp_path, top="cohort"))
    try:
        assert up.n_subjects == 2 and up.manifest.name == "manifest.csv"
        assert up.manifest.parent.name == "cohort" and up.manifest.is_relative_to(up.root)
        assert (up.manifest.parent / "sub/S2/dicom/b.dcm").read_bytes() == b"not read here"
        assert not up.root.is_relative_to(ROOT), "extracted outside the temporary folder"
    finally:
        up.remove()
    assert not up.root.exists() and not up.present


def test_numpy_label_archives_are_kept(tmp_path: Path) -> None:
    """A generated subject's truth/labels.npz (itself a zip) is written as a file, byte for byte."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, uid=np.arange(6, dtype=np.uint8).reshape(2, 3))
    up = extract_cohort_zip("c.zip", _zip_bytes(tmp_path, extra={"S1/truth/labels.npz": buf.getvalue()}))
    try:
        kept = up.root / "S1/truth/labels.npz"
        assert kept.read_bytes() == buf.getvalue()
        with np.load(kept) as z:
            assert z["uid"].tolist() == [[0, 1, 2], [3, 4, 5]]
    finally:
        up.remove()
    with pytest.raises(ArchiveError, match="cannot be used"):  # any other archive inside stays refused
        extract_cohort_zip("c.zip", _zip_bytes(tmp_path, extra={"S1/data.bin": buf.getvalue()}))


def test_folder_is_removed_with_the_object(tmp_path: Path) -> None:
    """When the session drops the upload (garbage collection), its folder goes too."""
    up = extract_cohort_zip("cohort.zip", _zip_bytes(tmp_path))
    root = up.root
    del up
    gc.collect()
    assert not root.exists()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("subject,class,path\nS1,healthy,/etc\n", "points outside the uploaded cohort"),
        ("subject,class,path\nS1,healthy,../../..\n", "points outside the uploaded cohort"),
        ("subject,class,path,mask_x\nS1,healthy,S1,/etc/passwd\n", "mask_x points outside"),
        ("subject,class,path\nS1,healthy,S9\n", "'S9' is not in the zip"),
        ("subject,class,path\nS1,sick,S1\n", "unknown class"),
    ],
)
def test_manifest_paths_must_stay_inside_the_upload(tmp_path: Path, manifest: str, message: str) -> None:
    """Absolute paths, ../ and missing folders are refused, naming the manifest line in the zip."""
    with pytest.raises(CaseError) as err:
        extract_cohort_zip("c.zip", _zip_bytes(tmp_path, manifest))
    assert message in str(err.value)
    assert "c.zip:manifest.csv, line 2" in str(err.value)
    assert "deepoxymap-cohort-" not in str(err.value), "message names the server's temporary folder"


def test_unsafe_or_incomplete_zips_are_refused(tmp_path: Path) -> None:
    """A member the loader's zip reader rejects (../ name, nested zip) rejects the whole cohort."""
    for name, data in [("../evil.txt", b"x"), ("inner.zip", b"PK\x03\x04rest")]:
        raw = _zip_bytes(tmp_path, extra={name: data})
        with pytest.raises(ArchiveError, match="cannot be used"):
            extract_cohort_zip("c.zip", raw)
    with pytest.raises(ArchiveError, match="not a zip"):
        extract_cohort_zip("c.zip", b"subject,class,path\n")


def test_the_loaders_upload_limits_apply(tmp_path: Path) -> None:
    """max_upload_files and max_upload_bytes of the settings bound the cohort zip, compressed and expanded."""
    raw = _zip_bytes(tmp_path)
    with pytest.raises(ArchiveError, match="cannot be used"):
        extract_cohort_zip("c.zip", raw, config=Settings(max_upload_files=2))
    with pytest.raises(ArchiveError, match="over the upload limit") as err:
        extract_cohort_zip("c.zip", raw, config=Settings(max_upload_bytes=len(raw) - 1))
    assert "max_upload_bytes" in str(err.value)
    zeros = _zip_bytes(tmp_path / "z", extra={"S1/zeros.bin": bytes(200_000)})
    assert len(zeros) < 10_000, "the zeros compress"
    with pytest.raises(ArchiveError, match="cannot be used"):  # small zip, too many bytes once expanded
        extract_cohort_zip("c.zip", zeros, config=Settings(max_upload_bytes=10_000))


BAD_ROWS = (
    "subject,class,path,mask_lesion\n"
    "E1,healthy,../../etc,\n"  # line 2
    "S1,healthy,S1,S1/lesion.nii.gz\n"  # line 3
    "E2,healthy,/etc,\n"  # line 4
    "E3,sick,S1,\n"  # line 5
    "S1,edema,S1,\n"  # line 6: S1 again
    "E4,healthy,S9,\n"  # line 7
    "E5,healthy,generate:1:2,\n"  # line 8
    "E6,edema,sub/S2,/etc/passwd\n"  # line 9
    "S2,edema,sub/S2,\n"  # line 10
)


def test_bad_rows_are_listed_and_the_good_rows_kept(tmp_path: Path) -> None:
    """Each bad row is listed with its line and why; the good rows form the manifest that is audited."""
    from deepoxymap.cohort import read_manifest

    up = extract_cohort_zip("c.zip", _zip_tree(tmp_path, BAD_ROWS))
    try:
        assert up.n_subjects == 2
        by_line = {int(r.split(", line ")[1].split(":")[0]): r for r in up.rejected}
        assert sorted(by_line) == [2, 4, 5, 6, 7, 8, 9], up.rejected
        assert all(r.startswith("c.zip:manifest.csv, line ") for r in up.rejected)
        assert "E1: path points outside the uploaded cohort" in by_line[2]
        assert "E2: path points outside the uploaded cohort" in by_line[4]
        assert "unknown class 'sick' for subject E3" in by_line[5]
        assert "duplicate subject S1" in by_line[6]
        assert "E4: path 'S9' is not in the zip" in by_line[7]
        assert "renders a phantom on the server" in by_line[8]
        assert "E6: mask_lesion points outside" in by_line[9]
        assert not any("deepoxymap-cohort-" in r for r in up.rejected), "a line names the temporary folder"
        rows = read_manifest(up.manifest)
        assert [r.subject for r in rows] == ["S1", "S2"]
        assert up.manifest.parent == up.root and up.manifest.name != "manifest.csv"
        assert all(r.path.is_relative_to(up.root) and r.path.is_dir() for r in rows)
        assert rows[0].masks["lesion"] == up.root / "S1/lesion.nii.gz"
        assert up.lines == {2: 3, 3: 10}, "screened line -> line of the uploaded manifest"
    finally:
        up.remove()


def test_a_clean_manifest_is_audited_as_uploaded(tmp_path: Path) -> None:
    """No bad row: the uploaded manifest.csv itself is audited and nothing is listed."""
    up = extract_cohort_zip("c.zip", _zip_bytes(tmp_path))
    try:
        assert up.rejected == [] and up.manifest.name == "manifest.csv"
        assert not (up.root / ".deepoxymap-screened-manifest.csv").exists()
    finally:
        up.remove()


def test_too_many_bad_rows_refuse_the_upload(tmp_path: Path) -> None:
    """Past MAX_REJECTED bad rows the file is likely no cohort manifest: refused, naming the first rows."""
    from deepoxymap.ui.audit_view import MAX_REJECTED

    manifest = "subject,class,path\nS1,healthy,S1\n" + "".join(f"X{i},nope,S1\n" for i in range(MAX_REJECTED + 1))
    with pytest.raises(CaseError, match=f"more than {MAX_REJECTED} rows") as err:
        extract_cohort_zip("c.zip", _zip_tree(tmp_path, manifest))
    assert "c.zip:manifest.csv, line 3: unknown class 'nope'" in str(err.value)
    with pytest.raises(CaseError, match="lacks columns"):
        extract_cohort_zip("c.zip", _zip_bytes(tmp_path / "b", "subject,path\nS1,S1\n"))


def test_run_errors_name_the_users_line_not_the_temporary_folder(tmp_path: Path) -> None:
    """An error from the run (screened line 2) names the line of the uploaded manifest and no server path."""
    from deepoxymap.ui.audit_view import _renamed

    manifest = tmp_path / "deepoxymap-cohort-x" / ".deepoxymap-screened-manifest.csv"
    exc = CaseError(f"no readable image series in {manifest.parent}/S2/dicom", source="line 2, subject S2")
    out = _renamed(exc, manifest, "uploaded cohort 'c.zip'", {2: 10})
    assert isinstance(out, CaseError)
    assert str(out) == "line 10, subject S2: no readable image series in S2/dicom"
    same = CaseError("model missing", source="model.keras")
    assert _renamed(same, manifest, "x", {}) is same


def test_results_png_of_a_view() -> None:
    """The page's PNG download: the summary figure of the view, a 1300 x 1000 PNG."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    from deepoxymap import CLASSES
    from deepoxymap.ui.audit_view import AuditView, results_png

    view = AuditView(
        manifest="uploaded cohort 'c.zip'",
        n_cases=4,
        model_name="tiny.keras",
        classes=list(CLASSES),
        confusion=np.eye(4, dtype=int),
        roc={"healthy": (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]), 1.0)},
        summary={},
        agreement=pd.DataFrame([{"class": "ischemic", "method": "gradcam", "pointing game": 1.0, "Dice (myo)": 0.4}]),
        cases=pd.DataFrame([{"subject": "S1"}]),
    )
    png = results_png(view)
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == (1300, 1000)
        assert len(set(im.convert("L").getdata())) > 20


def test_no_or_two_manifests(tmp_path: Path) -> None:
    """A zip without manifest.csv, or with two at the same depth, says so."""
    path = tmp_path / "n.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a/readme.txt", "x")
    with pytest.raises(CaseError, match="no manifest.csv"):
        extract_cohort_zip("n.zip", path.read_bytes())
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a/manifest.csv", MANIFEST)
        zf.writestr("b/manifest.csv", MANIFEST)
    with pytest.raises(CaseError, match="more than one manifest.csv"):
        extract_cohort_zip("n.zip", path.read_bytes())


def test_registered_cohorts_from_the_settings(tmp_path: Path) -> None:
    """demo and study are registered when their manifests exist; [cohorts] adds (or replaces) names."""
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "manifest.csv").write_text(MANIFEST)
    site = tmp_path / "site-a.csv"
    site.write_text(MANIFEST)
    toml = tmp_path / "deepoxymap.toml"
    toml.write_text(f'demo_dir = "{demo}"\ncohort_dir = "{tmp_path / "none"}"\n[cohorts]\nsite-a = "{site}"\n')
    s = load_settings(toml, env={})
    assert s.cohort_manifests() == {"demo": demo / "manifest.csv", "site-a": site}
    env = {"DEEPOXYMAP_COHORTS": f'{{"b": "{site}", "gone": "{tmp_path / "missing.csv"}"}}'}
    s = load_settings(tmp_path / "absent.toml", env=env)
    assert s.cohorts["b"] == site and "gone" not in s.cohort_manifests()
    rel = load_settings(tmp_path / "absent.toml", env={"DEEPOXYMAP_COHORTS": '{"r": "data/x.csv"}'})
    assert rel.cohorts["r"] == ROOT / "data" / "x.csv"


def test_a_subject_that_fails_in_the_run_is_listed_and_the_others_audited(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two generated subjects and one folder with no image (passes the upload's checks, fails when loaded):
    the two are audited; the third is listed with the line of the uploaded manifest, not of the screened copy."""
    from deepoxymap.phantom.generate import generate_subject
    from deepoxymap.ui import audit_view, modelinfo

    src = tmp_path / "src"
    for i, (sid, cls, sub) in enumerate([("G1", "healthy", "normal"), ("G2", "ischemic", "LAD-transmural")]):
        generate_subject(src, sid, cls, sub, "A", 5, i, n_frames=2)
    (src / "BROKEN").mkdir()
    (src / "BROKEN" / "notes.txt").write_text("no images here")
    manifest = (
        "subject,class,path\n"
        "E1,healthy,../../x\n"  # line 2: refused at upload
        "G1,healthy,G1\n"  # line 3
        "BROKEN,edema,BROKEN\n"  # line 4: fails in the run
        "G2,ischemic,G2\n"  # line 5
    )
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.csv", manifest)
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())
    up = extract_cohort_zip("c.zip", path.read_bytes())
    try:
        assert up.n_subjects == 3 and len(up.rejected) == 1
        loaded = modelinfo.loaded_model(tiny_model)
        monkeypatch.setattr(audit_view.modelinfo, "loaded_model", lambda: loaded)
        ticks: list[tuple[int, int]] = []
        view = audit_view.run_cohort_audit(
            up.manifest, ["gradcam"], 0, lambda d, n, _m: ticks.append((d, n)), label="c.zip", lines=up.lines
        )
    finally:
        up.remove()
    assert view.n_cases == 2 and sorted(view.cases["subject"]) == ["G1", "G2"]
    assert len(view.failed) == 1, view.failed
    assert view.failed[0].startswith("c.zip, line 4: subject BROKEN (test): "), view.failed
    assert "deepoxymap-cohort-" not in view.failed[0]
    assert ticks and ticks[-1][0] == ticks[-1][1] == 3, "progress counts every case, the failed one too"
    doc = json.loads(audit_view.results_json(view))
    assert doc["failed"] == view.failed
    assert not any("failed.csv" in n for n in view.notes)
