"""Cohort audit (researchers): classify and explain a whole manifest; confusion, ROC, agreement per method."""

from __future__ import annotations

import streamlit as st

from deepoxymap.ui import audit_view, figures, loading, navigation, state, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Cohort audit")
st.caption(
    "Runs the classifier and the chosen feature-map methods over the cases of a cohort (on the cohort the model "
    "was trained on, only its test split; validation subjects choose the map thresholds), then compares "
    "the calls with the reference classes and the maps with the reference lesions. Synthetic cohorts only carry "
    "ground truth; results on them say nothing about real patients."
)

with st.container(border=True):
    choice = audit_view.cohort_source_ui()
    c1, c2, c3 = st.columns([2, 1, 1])
    with widgets.guard("list the feature-map methods"):
        from deepoxymap.ui import analysis

        meths = analysis.methods()
        chosen = c1.multiselect(
            "Feature-map methods", list(meths), default=["gradcam"], format_func=meths.get, key="audit_methods"
        )
    limit = c2.number_input("At most N cases (0 = all)", min_value=0, value=0, step=10, key="audit_limit")
    run = c3.button("Run audit", type="primary", key="audit_run", icon=":material/play_arrow:", disabled=choice is None)

if st.session_state.pop(audit_view.RUNNING, False) and not run:
    st.warning("The last audit was stopped before it finished; its results were not kept.")

if run and choice is not None:
    with widgets.guard("run the audit"):
        bar = st.progress(0.0, text="Starting…")
        cancel = st.empty()
        cancel.button("Cancel", key="audit_cancel", icon=":material/stop:", help="Stops the audit at the next case.")

        def progress(done: int, total: int, label: str = "") -> None:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{done}/{total} cases {label}".strip())

        # Left set only when a rerun (Cancel, or any other click) stops the run: Streamlit's
        # rerun is a BaseException, which the `except Exception` below lets through.
        st.session_state[audit_view.RUNNING] = True
        try:
            result = audit_view.run_cohort_audit(
                choice.manifest,
                list(chosen or ["gradcam"]),
                int(limit),
                progress,
                label=choice.label,
                lines=choice.lines,
            )
        except Exception:
            st.session_state.pop(audit_view.RUNNING, None)
            raise
        st.session_state.pop(audit_view.RUNNING, None)
        cancel.empty()
        st.session_state[state.AUDIT] = result
        bar.progress(1.0, text=f"Done: {result.n_cases} cases")

result = st.session_state.get(state.AUDIT)
if result is None:
    st.info("Choose a registered cohort or upload a cohort zip, then press **Run audit**.")
    st.stop()

st.caption(f"{result.manifest} · {result.n_cases} cases · model `{result.model_name}`")
d1, d2, d3, _ = st.columns([1, 1, 1, 2])
d1.download_button(
    "Results (CSV)",
    data=audit_view.results_csv(result),
    file_name="deepoxymap_audit_cases.csv",
    mime="text/csv",
    key="audit_csv",
    on_click="ignore",
    icon=":material/table:",
)
d2.download_button(
    "Results (JSON)",
    data=audit_view.results_json(result),
    file_name="deepoxymap_audit.json",
    mime="application/json",
    key="audit_json",
    on_click="ignore",
    icon=":material/data_object:",
)
d3.download_button(
    "Summary figure (PNG)",
    data=lambda: audit_view.results_png(result),  # drawn when clicked (matplotlib, server-side)
    file_name="deepoxymap_audit_summary.png",
    mime="image/png",
    key="audit_png",
    on_click="ignore",
    icon=":material/image:",
    help="Confusion matrix, ROC per class and agreement per method, as one image.",
)
if result.failed:
    with st.container(key="audit_failed"):
        st.warning(
            f"{len(result.failed)} subject(s) could not be audited and are left out of the figures:\n"
            + "\n".join(f"- {line}" for line in result.failed[:20])
            + (f"\n- … and {len(result.failed) - 20} more" if len(result.failed) > 20 else "")
        )
if result.notes:
    st.caption("Notes: " + " · ".join(result.notes))
left, right = st.columns(2)
with left:
    st.subheader("Confusion matrix")
    with widgets.guard("draw the confusion matrix"):
        st.plotly_chart(
            figures.confusion_figure(result.confusion, result.classes),
            key="audit_confusion",
            config={"displaylogo": False},
        )
        if result.summary:
            st.caption(
                " · ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.summary.items())
            )
with right:
    st.subheader("ROC per class (one vs rest)")
    with widgets.guard("draw the ROC curves"):
        st.plotly_chart(figures.roc_figure(result.roc), key="audit_roc", config={"displaylogo": False})

st.subheader("Agreement of the feature maps with the reference lesions, per method")
with widgets.guard("show the agreement table"):
    if result.agreement is None or result.agreement.empty:
        st.info("No agreement figures: no case in this cohort has a reference lesion mask.")
    else:
        with st.container(key="audit_agreement_table"):
            st.dataframe(result.agreement, hide_index=True, key="audit_agreement")

st.subheader("Cases")
st.caption("Select a row, then open that case in Feature maps.")
with widgets.guard("show the per-case table"):
    event = st.dataframe(
        result.cases, hide_index=True, key="audit_cases", on_select="rerun", selection_mode="single-row"
    )
    selected = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if st.button("Open in Feature maps", key="audit_open", disabled=not selected, icon=":material/layers:"):
        row = result.rows[selected[0]]
        with widgets.guard(f"open case {row.subject}"), st.spinner(f"Loading {row.subject}…"):
            state.set_case(loading.load_record(row), f"cohort:{row.subject}")
            state.flash(f"Opened cohort case `{row.subject}` (reference class {row.label}).")
            st.switch_page(widgets.PAGE_FEATURES)
