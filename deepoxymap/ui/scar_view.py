"""Per-method scar figures for the current case: what each LGE method finds (a small Streamlit view).

The numbers come from :func:`deepoxymap.cardiac.scar.compare_methods` (every
method of :data:`~deepoxymap.cardiac.scar.SCAR_METHODS`: % of myocardium,
threshold, and Dice where a reference scar exists). This module only gathers
the inputs (from a :class:`~deepoxymap.case.Case`'s LGE series and its label
map, or from arrays), caches the table in the session and shows it.

Call from a page::

    from deepoxymap.ui.scar_view import render_scar_methods
    render_scar_methods(case)                       # the case's LGE + label map
    render_scar_methods(image=img, myocardium=myo,  # or arrays [slice, rows, cols]
                        pixel_spacing=(1.4, 1.4), reference=expert_scar)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from deepoxymap.case import Case, Role
from deepoxymap.errors import Unavailable

__all__ = ["lge_inputs", "render_scar_methods", "scar_methods_table"]

COLUMNS = ("Method", "Scar, % of myocardium", "Threshold (SI)", "Dice vs reference", "Reference, %")


def lge_inputs(
    case: Case,
) -> tuple[NDArray[np.float32], NDArray[np.bool_], tuple[float, float], NDArray[np.bool_] | None]:
    """``(image, myocardium, pixel_spacing, reference scar or None)`` of a case's first LGE series.

    The myocardium and reference scar come from the label map on the LGE grid
    (:func:`deepoxymap.cardiac.masks.masks_from_labels`, phantom scheme); the
    reference is None when the map marks no scar.

    Raises:
        Unavailable: no LGE series, or no label map on its grid.
    """
    from deepoxymap.cardiac.masks import masks_from_labels

    lge = case.first(Role.LGE)
    if lge is None:
        raise Unavailable("scar methods need an LGE series")
    mask = case.mask_for(lge.uid)
    if mask is None or mask.geometry.shape != lge.stack.geometry.shape or mask.n_slices != lge.stack.n_slices:
        raise Unavailable("scar methods need a myocardium label map on the LGE series")
    labels = np.rint(mask.data[:, 0]).astype(np.int64)
    m = masks_from_labels(labels)
    if m.myocardium.sum() < 2:
        raise Unavailable("the LGE label map holds no myocardium")
    ref = m.scar if m.scar.any() else None
    return lge.stack.data[:, 0].astype(np.float32), m.myocardium, lge.stack.geometry.pixel_spacing, ref


def scar_methods_table(
    image: NDArray[Any],
    myocardium: NDArray[Any],
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    reference: NDArray[Any] | None = None,
) -> pd.DataFrame:
    """The per-method table (columns :data:`COLUMNS`; Dice and reference NaN without a reference)."""
    from deepoxymap.cardiac.scar import compare_methods

    rows = compare_methods(image, myocardium, pixel_spacing, reference)
    return pd.DataFrame(
        [(r.method, r.percent_of_myocardium, r.threshold, r.dice, r.reference_percent) for r in rows],
        columns=list(COLUMNS),
    )


def render_scar_methods(
    case: Case | None = None,
    *,
    image: NDArray[Any] | None = None,
    myocardium: NDArray[Any] | None = None,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    reference: NDArray[Any] | None = None,
    key: str = "scar_methods",
) -> pd.DataFrame | None:
    """Show the per-method scar table for ``case`` (or for the given arrays); returns it (None if unavailable).

    With ``case``, the inputs come from :func:`lge_inputs` and the table is
    cached in ``st.session_state[key]`` per case; otherwise ``image`` and
    ``myocardium`` are required. An unavailable input shows an info line.
    """
    import streamlit as st

    cache_id = None
    try:
        if case is not None:
            cache_id = (case.case_id, tuple(s.uid for s in case.series))
            cached = st.session_state.get(key)
            if isinstance(cached, tuple) and cached[0] == cache_id:
                table: pd.DataFrame = cached[1]
            else:
                img, myo, ps, ref = lge_inputs(case)
                table = scar_methods_table(img, myo, ps, ref)
                st.session_state[key] = (cache_id, table)
        else:
            if image is None or myocardium is None:
                raise Unavailable("scar methods need an LGE image and a myocardium mask")
            table = scar_methods_table(image, myocardium, pixel_spacing, reference)
    except Unavailable as exc:
        st.info(str(exc))
        return None
    st.markdown("**Scar by method** (LGE, inside the myocardium)")
    has_ref = bool(np.isfinite(table["Reference, %"]).any())
    show = table if has_ref else table.drop(columns=["Dice vs reference", "Reference, %"])
    st.dataframe(
        show.style.format({c: "{:.2f}" for c in show.columns if c != "Method"}, na_rep="n/a"),
        hide_index=True,
        use_container_width=True,
    )
    st.caption(
        "Default: n-SD 3 detection grown to 1.5 SD over the lower mode of each slice's myocardial SI, "
        "components >= 20 mm2, >= 3 pixels thick or on the endocardium. "
        + ("Dice against the case's reference scar." if has_ref else "No reference scar on this case.")
    )
    return table
