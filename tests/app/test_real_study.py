"""A user's own real study with no label map: automatic masks unlock per-segment values, the OS response per
segment and the agreement figures (AppTest on the Sunnybrook cine; skipped where ../shared/data/real is absent).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import PAGES, new_app

from deepoxymap import io
from deepoxymap.automasks import frames_in_use, is_automatic
from deepoxymap.case import Case, Role, Series
from deepoxymap.ui import loading, segment_view


@pytest.fixture(scope="module")
def real_upload(real_data_dir: Path) -> tuple[Case, list[Series]]:
    """The Sunnybrook cine as the user uploads it, with its role set to OS-CMR on the Load page."""
    folder = real_data_dir / "sunnybrook" / "SCD0000101"
    if not folder.is_dir():
        pytest.skip(f"no Sunnybrook sample at {folder}")
    res = loading.load_sources([folder])
    series = list(res.series)
    case = io.build_case(series, loading.upload_case_id(series))
    case, series = loading.with_roles(case, series, {series[0].uid: Role.OS_CMR})
    case, notes = loading.with_automatic_masks(case)
    assert notes == []
    return case, series


def _app(case: Case, model: Path | None, page: str) -> Any:
    at = new_app()
    at.session_state["dox_case"] = case
    at.session_state["dox_case_token"] = f"{case.case_id}#real"
    at.session_state["dox_case_source"] = "upload"
    if model is not None:
        at.session_state["dox_model_path"] = str(model)
    at.switch_page(PAGES[page])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "Internal error" in e.value]
    return at


def _texts(at: Any) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def _chart(at: Any, key: str) -> tuple[str, np.ndarray]:
    """A Feature-maps chart picture: (its visible title, its decoded RGB pixels) from the container keyed ``key``."""
    import base64
    import io as _io

    from PIL import Image

    from deepoxymap.ui import charts

    box = at.get_by_key(key)
    title = " ".join(m.value.strip("*") for m in box.markdown)
    (src,) = [u for img in box.image for u in img.value]
    assert src.startswith(charts.CHART_URI_PREFIX), src[:40]
    return title, np.asarray(Image.open(_io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def _titles(at: Any) -> list[str]:
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return [((s.get("layout") or {}).get("title") or {}).get("text", "") for s in specs]


@pytest.mark.realdata
def test_upload_gets_automatic_masks_on_every_slice(real_upload: tuple[Case, list[Series]]) -> None:
    case, _ = real_upload
    (os_series,) = case.by_role(Role.OS_CMR)
    mask = case.mask_for(os_series.uid)
    assert mask is not None and is_automatic(mask)
    assert mask.data.shape == os_series.stack.data.shape
    assert set(np.unique(mask.data)) <= {0.0, 1.0, 2.0, 3.0}
    frames = frames_in_use(case, os_series)
    assert frames is not None and frames[0] == 0 and len(frames) == 2  # end-diastole and end-systole
    mid = os_series.stack.n_slices // 2
    assert (mask.data[mid, frames] == 2).sum(axis=(1, 2)).min() > 50  # a myocardium in both frames of a mid slice
    others = [f for f in range(os_series.stack.n_frames) if f not in frames]
    assert not mask.data[:, others].any()


@pytest.mark.realdata
def test_feature_maps_show_segments_and_agreement(real_upload: tuple[Case, list[Series]], tiny_model: Path) -> None:
    case, _ = real_upload
    at = _app(case, tiny_model, "features")
    text = _texts(at)
    assert segment_view.NEEDS_MASK not in text
    assert "automatic" in text.lower()
    title, rgb = _chart(at, "fm_bull_0")
    assert "CAM energy" in title, title
    assert rgb.shape[0] > 100 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20, "blank bullseye picture"
    assert not at.get("plotly_chart")  # Feature maps draws no plotly chart
    assert any("Energy in the myocardium" in str(df.value.to_dict()) for df in at.dataframe)


@pytest.mark.realdata
def test_viewer_outlines_and_os_response_per_segment(
    real_upload: tuple[Case, list[Series]],
) -> None:
    """Two time points of the real cine (the second 10 % brighter and shifted by 2 pixels): every stack gets its
    own automatic myocardium, and the per-segment OS response reads about +10 %."""
    case, _ = real_upload
    (s,) = case.by_role(Role.OS_CMR)
    start = dataclasses.replace(s.stack, timepoint="bh-start", acquisition_time_s=100.0)
    shifted = np.roll(s.stack.data * np.float32(1.10), 2, axis=-1)
    end = dataclasses.replace(
        s.stack, data=shifted, timepoint="bh-end", acquisition_time_s=160.0, series_uid=s.uid + ".9"
    )
    two = [dataclasses.replace(s, stack=start), Series(end.series_uid, end, Role.OS_CMR, "test")]
    study, notes = loading.with_automatic_masks(io.build_case(two, "real-os"))
    assert notes == []
    at = _app(study, None, "viewer")
    titles = _titles(at)
    assert any("ΔSI % per AHA segment" in t for t in titles), titles
    (table,) = [df.value for df in at.dataframe if "ΔSI %" in df.value.columns]
    assert len(table) >= 4
    assert np.all(np.abs(table["ΔSI %"].to_numpy() - 10.0) < 3.0), table
    assert "automatic segmentation" in _texts(at)
    image = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t.get("name") for t in image["data"]} >= {"LV blood pool (endocardium)", "LV epicardium"}


def test_viewer_shows_scar_by_method_on_the_lge(tiny_case: Case) -> None:
    """Viewer -> LGE: the per-method scar table, with Dice against the label map's scar (tiny case, no real data)."""
    at = new_app()
    at.session_state["dox_case"] = tiny_case
    at.session_state["dox_case_token"] = f"{tiny_case.case_id}#scar"
    at.session_state["dox_case_source"] = "demo:test"
    at.switch_page(PAGES["viewer"])
    at.run()
    at.radio(key="_w_dox_view_kind").set_value("LGE").run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [df.value for df in at.dataframe if "Dice vs reference" in df.value.columns]
    assert len(table) >= 3
    assert table["Dice vs reference"].max() > 0.8, table  # the tiny case's scar is bright and plain
