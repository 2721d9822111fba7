"""Classify: per-slice class probabilities, the case call, MC-dropout uncertainty, training data."""

from __future__ import annotations

import streamlit as st

from deepoxymap.ui import analysis, figures, modelinfo, navigation, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Classify")
loaded_case = widgets.require_case()
widgets.case_caption(loaded_case)

with st.container(border=True), widgets.guard("read the model card"):
    st.markdown("**What this model was trained on**")
    card = modelinfo.read_card()
    st.markdown(modelinfo.training_statement(card) if card else "No model card found.")
    st.caption(
        "Synthetic OS-CMR only: the probabilities are not calibrated for real patients and say nothing about them. "
        "The case call is the mean of the slice probabilities."
    )

with widgets.guard("load the classifier"):
    modelinfo.loaded_model()  # fails early with a clear message if there is no model

    c1, c2 = st.columns([1, 2])
    mc_on = c1.toggle(
        "MC-dropout uncertainty",
        key="cls_mc",
        help="Runs the model many times with dropout on; the spread of the answers shows how unsure it is.",
    )
    samples = c2.slider("MC samples", 5, 50, 20, step=5, key="cls_mc_n", disabled=not mc_on)
    n = samples if mc_on else 0
    with st.status("Classifying…", expanded=False) as status:
        view = analysis.predict(loaded_case, mc_samples=n)
        status.update(label="Classified", state="complete")

    left, right = st.columns([2, 3])
    with left:
        st.metric("Case-level call", view.call, help="Mean of the slice probabilities, as described in the model card.")
        st.caption(
            f"Probability {view.case_probs[view.call]:.0%}"
            + (f" ± {view.case_sd[view.call]:.0%} (mean MC-dropout SD over slices)" if view.case_sd else "")
        )
        if loaded_case.case.label:
            st.caption(f"Reference class (ground truth): **{loaded_case.case.label}**")
        if view.uncertainty is not None:
            st.metric(f"Uncertainty ({view.uncertainty_name})", f"{view.uncertainty:.2f}")
        err = [view.case_sd.get(c, 0.0) for c in view.classes] if view.case_sd else None
        st.plotly_chart(
            figures.probability_bars(view.classes, [view.case_probs[c] for c in view.classes], err),
            key="cls_case_bars",
            config={"displaylogo": False},
        )
    with right:
        st.markdown("**Per slice** (base → apex)")
        st.plotly_chart(
            figures.slice_probability_figure(view.slices, view.classes),
            key="cls_slice_bars",
            config={"displaylogo": False},
        )
        st.dataframe(view.slices.round(3), hide_index=True, key="cls_table")
    for note in view.notes:
        st.caption(f"Note: {note}")
    st.page_link(widgets.PAGE_FEATURES, label="See what the model looked at (Feature maps)", icon=":material/layers:")
