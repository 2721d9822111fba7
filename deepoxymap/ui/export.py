"""Export of the current Feature-maps view: a PNG composite and a CSV of the numbers.

Built only when the user clicks (``st.download_button`` with a callable), on
the server with matplotlib's Agg backend; nothing is written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray


@dataclass(frozen=True)
class ViewPanel:
    """One image panel as shown on screen.

    Attributes:
        title: panel title (includes the matching distance).
        image: ``[R, C]`` image, or ``None`` (panel shows ``note``).
        window: display ``(lo, hi)``.
        image_cmap: ``"gray"`` or a vendored colour map (``lipari``/``navia`` for T1/T2 maps).
        units: colour-bar title for quantitative images (e.g. ``"T1 (ms)"``); ``""``: no colour bar.
        aspect: row spacing / column spacing (pixel aspect).
        overlay: ``[R, C]`` heatmap in [0, 1] drawn with ``cmap`` at ``opacity``.
        contour: ``[R, C]`` field whose ``level`` iso-line is drawn.
        reference: ``[R, C]`` binary-ish reference mask outline (drawn at 0.5), optional.
        note: text when there is no image.
    """

    title: str
    image: NDArray[Any] | None
    window: tuple[float, float]
    aspect: float = 1.0
    overlay: NDArray[Any] | None = None
    cmap: str = "jet"
    opacity: float = 0.45
    contour: NDArray[Any] | None = None
    level: float = 0.5
    reference: NDArray[Any] | None = None
    note: str = ""
    crop: tuple[int, int, int, int] | None = None
    image_cmap: str = "gray"
    units: str = ""


def _cmap(name: str) -> Any:
    """A matplotlib colour map: ``"gray"`` or a vendored table (:func:`deepoxymap.display.colormap_table`)."""
    if name.lower() in ("gray", "grey"):
        return "gray"
    from matplotlib.colors import ListedColormap

    from deepoxymap.display import colormap_table

    return ListedColormap(colormap_table(name), name=name)


def view_png(panels: Sequence[ViewPanel], *, suptitle: str, footer: str = "", ncols: int | None = None) -> bytes:
    """A PNG of the panels, ``ncols`` per row (default: all in one row; dark background, 150 dpi)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = max(1, len(panels))
    cols = max(1, min(n, ncols or n))
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.6 * cols, 4.2 * rows), dpi=150, facecolor="black")
    for i, p in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_facecolor("black")
        ax.set_axis_off()
        ax.set_title(p.title, color="white", fontsize=9)
        if p.image is None:
            ax.text(
                0.5,
                0.5,
                p.note or "not available",
                color="white",
                ha="center",
                va="center",
                wrap=True,
                fontsize=8,
                transform=ax.transAxes,
            )
            continue
        im = ax.imshow(
            p.image,
            cmap=_cmap(p.image_cmap),
            vmin=p.window[0],
            vmax=p.window[1],
            aspect=p.aspect,
            interpolation="nearest",
        )
        if p.units:
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            bar.set_label(p.units, color="white", fontsize=7)
            bar.ax.tick_params(colors="white", labelsize=6)
        if p.overlay is not None:
            faded = np.ma.masked_less(np.asarray(p.overlay, dtype=np.float32), 0.05)
            ax.imshow(
                faded, cmap=p.cmap.lower(), vmin=0, vmax=1, alpha=p.opacity, aspect=p.aspect, interpolation="bilinear"
            )
        if p.contour is not None and np.nanmax(p.contour) >= p.level:
            ax.contour(p.contour, levels=[p.level], colors=["#00e5ff"], linewidths=1.2)
        if p.reference is not None and np.nanmax(p.reference) > 0.5:
            ax.contour(p.reference, levels=[0.5], colors=["#ffd400"], linewidths=1.0, linestyles="dashed")
        if p.crop is not None:
            ax.set_xlim(p.crop[2] - 0.5, p.crop[3] - 0.5)
            ax.set_ylim(p.crop[1] - 0.5, p.crop[0] - 0.5)
    fig.suptitle(suptitle, color="white", fontsize=10)
    if footer:
        fig.text(0.01, 0.01, footer, color="#bbbbbb", fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="black", bbox_inches="tight")
    return buf.getvalue()


def numbers_csv(sections: Mapping[str, pd.DataFrame | Mapping[str, Any]]) -> bytes:
    """One long CSV ``section,item,value`` of every number on screen."""
    rows: list[dict[str, Any]] = []
    for name, data in sections.items():
        if isinstance(data, pd.DataFrame):
            first = data.columns[0]
            for rec in data.to_dict("records"):
                item = rec[first]
                if isinstance(item, float) and item.is_integer():
                    item = int(item)
                for col in data.columns[1:]:
                    rows.append({"section": name, "item": str(item), "quantity": col, "value": rec[col]})
        else:
            for k, v in data.items():
                rows.append({"section": name, "item": str(k), "quantity": "", "value": v})
    return pd.DataFrame(rows, columns=["section", "item", "quantity", "value"]).to_csv(index=False).encode()
