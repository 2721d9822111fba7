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
        image: ``[R, C]`` grey image, or ``None`` (panel shows ``note``).
        window: display ``(lo, hi)``.
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


def view_png(panels: Sequence[ViewPanel], *, suptitle: str, footer: str = "") -> bytes:
    """A side-by-side PNG of the panels (dark background, 150 dpi)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = max(1, len(panels))
    fig = Figure(figsize=(3.6 * n, 4.2), dpi=150, facecolor="black")
    for i, p in enumerate(panels):
        ax = fig.add_subplot(1, n, i + 1)
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
        ax.imshow(p.image, cmap="gray", vmin=p.window[0], vmax=p.window[1], aspect=p.aspect, interpolation="nearest")
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
