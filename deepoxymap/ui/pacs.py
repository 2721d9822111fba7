"""Load case -> "From PACS": search the configured DICOMweb server, pick a study, retrieve it into the session.

Thin wiring over :class:`deepoxymap.dicomweb.PacsClient`: the server comes from
the settings (``pacs_url``, credentials, trust flag); every request fails fast
with a clear message when the server is unreachable. A retrieved study goes
through the app's own loader (:func:`deepoxymap.ui.loading.load_sources`),
exactly as an upload. Search results show no patient identifiers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from deepoxymap import dicomweb, io
from deepoxymap.config import settings
from deepoxymap.ui import dicom_export, loading, state, widgets

__all__ = ["HITS", "from_pacs_ui", "study_rows"]

HITS = "dox_pacs_hits"
"""Plain session key: the last search's studies (``list[StudyHit]``)."""

NO_PACS = (
    "No PACS configured: set `pacs_url` (DICOMweb root, e.g. `http://pacs:8042/dicom-web`) and, if needed, "
    "`pacs_username` / `pacs_password` in `deepoxymap.toml` or as `DEEPOXYMAP_PACS_*` environment variables."
)


def study_rows(hits: list[dicomweb.StudyHit]) -> list[dict[str, Any]]:
    """One display row per study (no patient identifiers)."""
    return [
        {
            "study": i + 1,
            "date": f"{h.date[:4]}-{h.date[4:6]}-{h.date[6:8]}" if len(h.date) == 8 else h.date,
            "description": h.description,
            "modalities": ", ".join(h.modalities),
            "series": h.n_series,
            "instances": h.n_instances,
        }
        for i, h in enumerate(hits)
    ]


def _label(hits: list[dicomweb.StudyHit], i: int) -> str:
    h = hits[i]
    return f"{i + 1}. {h.date or 'no date'} · {h.description or 'study'} · {', '.join(h.modalities) or '?'}"


def _retrieve(client: dicomweb.PacsClient, hit: dicomweb.StudyHit) -> None:
    with st.status("Retrieving the study from the PACS…", expanded=False) as status:
        files = client.retrieve_study(hit.study_uid)
        status.update(label=f"Reading {len(files)} instance(s)…")
        result = loading.load_sources(files)
        series = list(result.series)
        if not series:
            status.update(label="No usable images in this study", state="error")
            st.error("The study holds no usable image series. See the load report below.")
            st.session_state[state.LOAD_ISSUES] = list(result.issues)
            return
        case_id = "pacs-" + hashlib.sha256(hit.study_uid.encode()).hexdigest()[:10]
        case = io.build_case(series, case_id)
        status.update(label="Segmenting the LV (automatic)…")
        case, seg_notes = loading.with_automatic_masks(case)
        for note in seg_notes:
            st.warning(note)
        state.set_case(case, "pacs", series=series, issues=list(result.issues))
        dicom_export.remember_sources(case.case_id, files, "PACS")
        status.update(label=f"Loaded {len(series)} series from the PACS", state="complete")
    state.flash(f"Loaded {len(series)} series from the PACS; {len(result.issues)} file(s) skipped.")
    st.rerun()


def from_pacs_ui() -> None:
    """Search form, results table, study picker and the retrieve button."""
    s = settings()
    if not s.pacs_url:
        st.info(NO_PACS, icon=":material/extension:")
        return
    trust = "trusted" if s.pacs_trusted else "not trusted: anything sent there is de-identified"
    st.caption(f"DICOMweb server `{s.pacs_url}` ({trust}). Search by patient ID, name (`*` wildcards) or accession.")
    c1, c2, c3 = st.columns(3)
    pid = c1.text_input("Patient ID", key="pacs_pid")
    name = c2.text_input("Patient name", key="pacs_name")
    acc = c3.text_input("Accession number", key="pacs_acc")
    if st.button("Search the PACS", key="pacs_search", icon=":material/search:"):
        st.session_state.pop(HITS, None)
        with widgets.guard("search the PACS"), st.spinner("Searching…"):
            client = dicomweb.client_from_settings()
            client.check()
            st.session_state[HITS] = client.search_studies(patient_id=pid, patient_name=name, accession=acc)
    hits = st.session_state.get(HITS)
    if hits is None:
        return
    if not hits:
        st.info("No study matches.")
        return
    st.dataframe(pd.DataFrame(study_rows(hits)), hide_index=True, width="stretch", key="pacs_results")
    pick = st.selectbox("Study to load", list(range(len(hits))), format_func=lambda i: _label(hits, i), key="pacs_pick")
    if st.button("Retrieve and load", type="primary", key="pacs_retrieve", icon=":material/download:"):
        with widgets.guard("retrieve the study from the PACS"):
            client = dicomweb.client_from_settings()
            client.check()
            _retrieve(client, hits[int(pick)])
