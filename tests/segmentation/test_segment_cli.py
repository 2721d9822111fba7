"""``deepoxymap segment PATH... --out DIR``: PNG names, pixel grid, values, and errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from seg_synth import mr_file, sax_case

from deepoxymap.cli import main
from deepoxymap.segmentation.check import dice

SHAPE = (150, 170)  # rows != cols: a transposed output would show


def _dicom_series(folder: Path, n: int = 2) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``n`` slices of one synthetic cine series; returns SOPInstanceUID -> truth labels, and -> pixels."""
    truth, pixels = {}, {}
    for k in range(n):
        img, lab = sax_case("cine", np.random.default_rng(k), shape=SHAPE)
        px = np.clip(img * 1000, 0, 4095).astype(np.uint16)
        uid = mr_file(
            px,
            folder / f"IM{k:03d}.dcm",
            series_uid="1.2.826.0.1.3680043.8.498.21",
            z_mm=8.0 * k,
            spacing_mm=1.4,
            instance=k + 1,
        )
        truth[uid], pixels[uid] = lab, px
    return truth, pixels


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    rc = main(["segment", *argv])
    cap = capsys.readouterr()
    return rc, json.loads(cap.out.strip().splitlines()[-1]), cap.err


@pytest.mark.parametrize("method", [None, "polar", "unet"])
def test_dicom_pngs_named_by_sop_uid_on_the_image_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str | None
) -> None:
    """One 8-bit PNG per DICOM image, named by its SOPInstanceUID, rows x cols as stored, values 0-3,
    by the default method or the one named."""
    truth, _ = _dicom_series(tmp_path / "in")
    extra = [] if method is None else ["--method", method]
    rc, summary, err = _run(capsys, str(tmp_path / "in"), "--out", str(tmp_path / "out"), *extra)
    assert rc == 0, err
    assert summary["written"] == 2 and summary["failed"] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{u}.png" for u in truth)
    for uid, lab in truth.items():
        im = Image.open(tmp_path / "out" / f"{uid}.png")
        assert im.mode == "L"
        arr = np.asarray(im)
        assert arr.shape == SHAPE and arr.dtype == np.uint8
        assert set(np.unique(arr)) <= {0, 1, 2, 3}
        assert dice(arr == 2, lab == 2) >= 0.8  # the map sits on the image, not transposed or shifted
        assert dice(arr == 1, lab == 1) >= 0.9


def test_bad_file_is_named_and_good_ones_still_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated DICOM and a missing path are errors naming them; the readable images are still written."""
    truth, _ = _dicom_series(tmp_path / "in")
    good = next(iter((tmp_path / "in").glob("*.dcm"))).read_bytes()
    (tmp_path / "in" / "broken.dcm").write_bytes(good[:1500])
    missing = tmp_path / "nope"
    rc, summary, err = _run(capsys, str(tmp_path / "in"), str(missing), "--out", str(tmp_path / "out"))
    assert rc == 1
    assert "broken.dcm" in err and str(missing) in err
    assert summary["written"] == 2 and summary["failed"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{u}.png" for u in truth)


def test_nifti_pngs_named_by_stem_slice_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 3D NIfTI volume gives <stem>_s<slice>_f0.png, rows = voxel axis i, columns = j."""
    import nibabel as nib

    imgs, labs = zip(*(sax_case("lge", np.random.default_rng(k), shape=SHAPE) for k in range(2)), strict=True)
    vol = np.stack(imgs, axis=-1).astype(np.float32)  # (i, j, k)
    aff = np.diag([1.4, 1.4, 10.0, 1.0])
    nib.save(nib.Nifti1Image(vol, aff), str(tmp_path / "scan.nii.gz"))
    rc, summary, err = _run(capsys, str(tmp_path / "scan.nii.gz"), "--kind", "lge", "--out", str(tmp_path / "out"))
    assert rc == 0, err
    assert summary["written"] == 2
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["scan_s0_f0.png", "scan_s1_f0.png"]
    found = [np.asarray(Image.open(tmp_path / "out" / n)) for n in names]
    assert all(a.shape == SHAPE for a in found)
    # the reader orders slices base to apex; each PNG matches one of the two truths
    for a in found:
        assert max(dice(a == 2, lab == 2) for lab in labs) >= 0.8


def test_nothing_readable_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only a non-image file: exit 1, an error naming it, nothing written."""
    (tmp_path / "notes.dcm").write_bytes(b"not a dicom file at all" * 10)
    rc, summary, err = _run(capsys, str(tmp_path / "notes.dcm"), "--out", str(tmp_path / "out"))
    assert rc == 1 and summary["written"] == 0
    assert "notes.dcm" in err


def test_missing_segmenter_model_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a usable model file: --method unet fails for every series, naming the file and how to
    train one; with no --method the classical method runs, with a note."""
    from deepoxymap.segmentation import learned

    def missing(path: Path | None = None) -> None:
        raise learned.SegmenterUnavailable("no segmenter model at /nowhere/seg.keras; train one with `python -m x`")

    monkeypatch.setattr(learned, "load_segmenter", missing)
    truth, _ = _dicom_series(tmp_path / "in", n=1)
    rc, summary, err = _run(capsys, str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--method", "unet")
    assert rc == 1 and summary["written"] == 0 and summary["failed"] == 1
    assert "/nowhere/seg.keras" in err and "train one" in err
    rc, summary, err = _run(capsys, str(tmp_path / "in"), "--out", str(tmp_path / "out2"))
    assert rc == 0 and summary["written"] == 1, err
    assert "using the classical method" in err
    (uid,) = truth
    assert dice(np.asarray(Image.open(tmp_path / "out2" / f"{uid}.png")) == 2, truth[uid] == 2) >= 0.8
