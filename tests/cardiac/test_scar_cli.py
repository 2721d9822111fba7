"""``deepoxymap scar IMAGE --myocardium MASK --labels ... --out DIR``: output grid, JSON line, error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sax_synth import sax_labels

from deepoxymap.cli import COMMANDS, main

nib = pytest.importorskip("nibabel")

AFFINE = np.array([[1.4, 0, 0, -50.0], [0, 1.4, 0, -60.0], [0, 0, 8.0, 10.0], [0, 0, 0, 1]])


@pytest.fixture
def volume(tmp_path, rng):
    """An LGE NIfTI (x, y, z) = (96, 96, 3) with a bright infarct, and its EMIDEC-style label map (2 normal, 3 infarct)."""
    labs = []
    for _ in range(3):
        lab = sax_labels(lesion=(60.0, 150.0, 0.0, 0.9)).astype(np.int16)
        lab[lab == 3] = 0  # EMIDEC has no RV label
        lab[lab == 4] = 3
        labs.append(lab)
    lab = np.stack(labs, axis=-1)
    img = rng.normal(300.0, 40.0, lab.shape)
    img[lab == 1] += 160.0
    img[lab == 3] += 260.0
    ip, mp = tmp_path / "lge.nii.gz", tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(img.astype(np.float32), AFFINE), str(ip))
    nib.save(nib.Nifti1Image(lab, AFFINE), str(mp))
    return ip, mp, lab


def test_registered():
    assert "scar" in COMMANDS


def test_writes_scar_on_the_image_grid(volume, tmp_path, capsys):
    """scar.nii.gz has the image's shape and affine, lies inside the myocardium, matches the infarct;
    stdout is one JSON line with percent_of_myocardium, method and threshold."""
    ip, mp, lab = volume
    out = tmp_path / "out"
    assert main(["scar", str(ip), "--myocardium", str(mp), "--labels", "2,3,4", "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert {"percent_of_myocardium", "method", "threshold"} <= set(rec)
    s = nib.load(str(out / "scar.nii.gz"))
    assert s.shape == lab.shape and np.allclose(s.affine, AFFINE)
    scar = np.asarray(s.dataobj) > 0
    myo = np.isin(lab, (2, 3))
    assert not (scar & ~myo).any()
    ref = lab == 3
    assert 2 * (scar & ref).sum() / (scar.sum() + ref.sum()) > 0.8
    assert rec["percent_of_myocardium"] == pytest.approx(100 * scar.sum() / myo.sum(), abs=1e-3)
    assert "n-SD 3" in rec["method"] and rec["threshold"] > 300
    assert rec["labels"] == [2, 3]


def test_labels_partly_absent_is_a_note(volume, tmp_path, capsys):
    """Label 4 (no-reflow) absent: a note on stderr, the run goes on."""
    ip, mp, _ = volume
    assert main(["scar", str(ip), "--myocardium", str(mp), "--out", str(tmp_path / "o")]) == 0
    assert "labels [4] absent" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ("grid", "does not match the image grid"),
        ("affine", "affine differs"),
        ("labels", "none of the labels [7]"),
        ("bad-labels", "comma-separated integers"),
        ("missing", "file not found"),
        ("not-nifti", "must be a NIfTI file"),
    ],
)
def test_errors_name_the_file(volume, tmp_path, capsys, change, expect):
    """Bad input: a non-zero exit and an error naming the file and what is wrong."""
    ip, mp, lab = volume
    labels = "2,3,4"
    if change == "grid":
        mp2 = tmp_path / "small.nii.gz"
        nib.save(nib.Nifti1Image(lab[:80], AFFINE), str(mp2))
        mp = mp2
    elif change == "affine":
        mp2 = tmp_path / "moved.nii.gz"
        a = AFFINE.copy()
        a[0, 3] += 5
        nib.save(nib.Nifti1Image(lab, a), str(mp2))
        mp = mp2
    elif change == "labels":
        labels = "7"
    elif change == "bad-labels":
        labels = "2,x"
    elif change == "missing":
        mp = tmp_path / "nope.nii.gz"
    elif change == "not-nifti":
        mp = tmp_path / "labels.png"
        mp.write_bytes(b"x")
    code = main(["scar", str(ip), "--myocardium", str(mp), "--labels", labels, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and expect in err
    if change not in ("bad-labels",):
        assert mp.name in err
