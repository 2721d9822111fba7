"""ui.scar_view: the per-method scar table (pure) and its Streamlit rendering."""

from __future__ import annotations

import numpy as np
import pytest
from sax_synth import lge_image, sax_labels

from deepoxymap.cardiac.scar import SCAR_METHODS
from deepoxymap.case import Case
from deepoxymap.errors import Unavailable
from deepoxymap.ui.scar_view import COLUMNS, lge_inputs, scar_methods_table


def test_table_has_every_method(rng):
    lab = np.stack([sax_labels(lesion=(250, 320, 0.0, 1.0)) for _ in range(2)])
    img = np.stack([lge_image(lab[k], rng) for k in range(2)])
    myo = np.isin(lab, (2, 4))
    t = scar_methods_table(img, myo, (1.4, 1.4), lab == 4)
    assert list(t.columns) == list(COLUMNS) and list(t["Method"]) == list(SCAR_METHODS)
    assert t["Dice vs reference"].iloc[0] > 0.8
    assert t["Dice vs reference"].notna().all()
    assert scar_methods_table(img, myo, (1.4, 1.4))["Dice vs reference"].isna().all()


def test_case_without_lge_is_unavailable():
    with pytest.raises(Unavailable, match="LGE"):
        lge_inputs(Case(case_id="x"))


def test_renders_in_streamlit():
    """AppTest: the table renders for arrays; a case without LGE shows an info line."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        import numpy as np

        from deepoxymap.case import Case
        from deepoxymap.ui.scar_view import render_scar_methods

        rng = np.random.default_rng(0)
        img = rng.normal(100, 10, (2, 64, 64))
        myo = np.zeros((2, 64, 64), bool)
        myo[:, 20:44, 20:44] = True
        myo[:, 26:38, 26:38] = False
        render_scar_methods(image=img, myocardium=myo, pixel_spacing=(1.4, 1.4))
        render_scar_methods(Case(case_id="x"))

    at = AppTest.from_function(page).run(timeout=60)
    assert not at.exception
    assert len(at.dataframe) == 1 and "LGE" in at.info[0].value
