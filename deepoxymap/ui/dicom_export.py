"""Feature maps -> the case report (PDF), the DICOM objects, and "Send to PACS".

Thin wiring over :mod:`deepoxymap.export` and :mod:`deepoxymap.dicomweb`:

* nothing is built until the user switches on "Prepare the report and DICOM
  exports" (sticky: it stays on for later cases); then
* the analysis (:func:`deepoxymap.export.analyse_case`) reuses what the page
  already computed (preprocessed input, prediction, CAMs, reference masks) and
  is cached per case and CAM setting in this session;
* the files are built only when the user clicks a download button (deferred
  ``st.download_button`` data), once per setting, under the names
  :func:`deepoxymap.export.export_names` gives (the same as ``deepoxymap export``);
* DICOM objects are de-identified unless the user keeps identifiers; "Send to
  PACS" de-identifies unless the configured server is marked trusted.

The exports reference the study's source DICOM instances, so the session keeps
their headers (no pixels): :func:`remember_sources` after an upload or a PACS
retrieval; demo and cohort cases are read again from their folders.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import streamlit as st

from deepoxymap.case import Case
from deepoxymap.config import settings
from deepoxymap.errors import Unavailable
from deepoxymap.export import KIND_LABELS, CaseAnalysis, ExportBundle, SourceIndex, analyse_case, export_names
from deepoxymap.ui import analysis, modelinfo, state, widgets

__all__ = ["EXPORTS_KEY", "SOURCES", "exports_ui", "remember_sources", "remember_uploads"]

EXPORTS_KEY = "dox_fm_exports"
"""Sticky session key of the "Prepare the report and DICOM exports" toggle (off: nothing is built)."""

SOURCES = "dox_export_sources"
"""Plain session key: ``(case_id, SourceIndex)`` of the DICOM files the case was loaded from."""

NO_SOURCES = (
    "DICOM exports reference the study's own DICOM files, and this session no longer holds them: "
    "load the study again (upload or From PACS) and come back."
)

_BUTTONS = ("report", "parametric_map", "seg_cam", "seg_cam_fractional", "seg_scar", "seg_edema", "sr")
_MIME = {"report": "application/pdf"}


def remember_sources(case_id: str, sources: Sequence[Any], origin: str) -> None:
    """Keep the headers (no pixels) of the files a case was loaded from, for its exports."""
    st.session_state[SOURCES] = (case_id, SourceIndex.from_sources(list(sources), origin=origin))


def remember_uploads(case_id: str, files: Sequence[Any]) -> None:
    """:func:`remember_sources` for Streamlit ``UploadedFile`` objects."""
    remember_sources(case_id, [(f.name, f.getvalue()) for f in files], "upload")


def _index(lc: state.LoadedCase) -> SourceIndex:
    """The source headers of this session's case.

    Raises:
        Unavailable: the case came from an upload or the PACS in an earlier session state.
    """
    stored = st.session_state.get(SOURCES)
    if stored is not None and stored[0] == lc.case.case_id:
        return stored[1]  # type: ignore[no-any-return]
    if lc.source.startswith(("demo:", "cohort:")):
        from deepoxymap.ui import loading

        rows = [r for r in loading.demo_cases() if r.subject == lc.case.case_id]
        if rows:
            index = state.cached(lc.token, ("export_sources",), lambda: SourceIndex.from_case_paths([rows[0].path]))
            return index
    raise Unavailable(NO_SOURCES)


class _LazyBundle:
    """Builds the bundle once, on the first download click (thread-safe: deferred downloads run off-script)."""

    def __init__(self, analysis: CaseAnalysis, case: Case, index: SourceIndex, keep: bool) -> None:
        self._args = (analysis, case, index, keep)
        self._lock = threading.Lock()
        self._bundle: ExportBundle | None = None

    def get(self) -> ExportBundle:
        from deepoxymap.export import export_case

        with self._lock:
            if self._bundle is None:
                a, c, i, k = self._args
                self._bundle = export_case(a, c, i, keep_identifiers=k)
            return self._bundle

    def data(self, kind: str) -> bytes:
        return self.get().data(kind)


def _analysis(lc: state.LoadedCase, ctl: Any, cams: Sequence[Any]) -> CaseAnalysis:
    """:func:`~deepoxymap.export.analyse_case` on what the page computed (cached per CAM setting)."""
    loaded = modelinfo.loaded_model()

    def run() -> CaseAnalysis:
        from deepoxymap.ui import segment_view

        reference = None
        if lc.case.masks:
            try:
                reference = segment_view.case_maps(lc)
            except Unavailable:
                reference = None
        return analyse_case(
            lc.case,
            loaded,
            method=ctl.method,
            layer=ctl.layer if analysis.method_uses_layer(ctl.method) else None,
            target=ctl.target,
            contrast=ctl.contrast,
            threshold=ctl.threshold,
            pre=analysis.preprocessed(lc, loaded),
            prediction=analysis.predict(lc).raw,
            cams=[c.source for c in cams],
            reference=reference,
        )

    key = ("export_analysis", modelinfo.model_key(), *ctl.cam_key, round(float(ctl.threshold), 3))
    return state.cached(lc.token, key, run)


def _push(lc: state.LoadedCase, a: CaseAnalysis, index: SourceIndex, keep: bool) -> None:
    from deepoxymap import dicomweb
    from deepoxymap.export import push_exports

    client = dicomweb.client_from_settings()
    with st.spinner(f"Sending the DICOM objects to {client.url}…"):
        res = push_exports(client, a, index, keep_identifiers=True if keep else None)
    how = "de-identified" if res.deidentified else "with identifiers (trusted server)"
    st.success(f"Stored {len(res.stored)} object(s) on the PACS, {how}.", icon=":material/cloud_done:")


def _why_not(a: CaseAnalysis, kind: str, have_sources: bool) -> str:
    """Why a download button is disabled, in words."""
    if not have_sources:
        return NO_SOURCES
    lesion = kind.removeprefix("seg_")
    return next((n for n in a.notes if n.startswith(lesion)), f"no {lesion} mask for this case")


def exports_ui(lc: state.LoadedCase, model: Any, ctl: Any, cams: Sequence[Any] | None) -> None:
    """The exports switch; when on, the report and DICOM download buttons, the identifiers toggle and "Send to PACS"."""
    if model is None or cams is None or ctl.method is None:
        st.info("The report and the DICOM exports need the classifier's feature maps (see above).")
        return
    if not widgets.sticky_toggle(
        "Prepare the report and DICOM exports",
        EXPORTS_KEY,
        False,
        help="Builds the case analysis behind the report and reads the study's DICOM headers, then offers the "
        "downloads. Off until needed: otherwise every new case or setting (a threshold change included) "
        "would recompute it.",
    ):
        st.caption(
            "The case report (PDF), the CAM as a DICOM parametric map and SEG, the scar and edema SEGs and the "
            "structured report, at this view's settings: switch on to prepare them. Stays on for later cases."
        )
        return
    s = settings()
    keep = st.toggle(
        "Keep patient identifiers in the DICOM exports",
        value=False,
        key="fm_keep_ids",
        help="Off (default): every DICOM object is de-identified (dicognito; UIDs stay consistent within one export).",
    )
    a = _analysis(lc, ctl, cams)
    names = export_names(a.case_id)
    try:
        index = _index(lc)
    except Unavailable as exc:
        index = None
        st.info(str(exc), icon=":material/extension:")
    key = ("export_bundle", modelinfo.model_key(), *ctl.cam_key, round(float(ctl.threshold), 3), bool(keep))
    lazy = None
    if index is not None:
        lazy = state.cached(lc.token, key, lambda: _LazyBundle(a, lc.case, index, bool(keep)))
    cols = st.columns(4)
    for i, kind in enumerate(_BUTTONS):
        available = kind == "report" or (
            lazy is not None
            and (kind not in ("seg_scar", "seg_edema") or getattr(a, kind.removeprefix("seg_")) is not None)
        )
        if kind == "report" and lazy is None:
            from deepoxymap.export.report import report_pdf

            data: Any = lambda: report_pdf(a, lc.case)
        else:
            data = (lambda k=kind, lz=lazy: lz.data(k)) if lazy is not None else b""
        cols[i % 4].download_button(
            KIND_LABELS[kind],
            data=data,
            file_name=names[kind],
            mime=_MIME.get(kind, "application/dicom"),
            key=f"fm_dl_{kind}",
            on_click="ignore",
            disabled=not available,
            help=None if available else _why_not(a, kind, index is not None),
            icon=":material/picture_as_pdf:" if kind == "report" else ":material/download:",
            width="stretch",
        )
    note = "de-identified" if not keep else "WITH the patient's identifiers"
    st.caption(f"DICOM objects are {note}; the report names the case only by its id `{a.case_id}`. Research use only.")
    if s.pacs_url and index is not None:
        trust = "trusted: objects keep identifiers" if s.pacs_trusted else "not trusted: objects are de-identified"
        if st.button(f"Send to PACS ({trust})", key="fm_send_pacs", icon=":material/cloud_upload:"):
            with widgets.guard("send the exports to the PACS"):
                _push(lc, a, index, bool(keep))
