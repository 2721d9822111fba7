"""Cohort zips for the Cohort audit page: unpacked through the loader's zip reader, paths kept inside the upload."""

from __future__ import annotations

import gc
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
    """max_upload_files and max_upload_bytes of the settings bound the cohort zip."""
    raw = _zip_bytes(tmp_path)
    with pytest.raises(ArchiveError, match="cannot be used"):
        extract_cohort_zip("c.zip", raw, config=Settings(max_upload_files=2))
    with pytest.raises(ArchiveError, match="cannot be used"):
        extract_cohort_zip("c.zip", raw, config=Settings(max_upload_bytes=40))


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
