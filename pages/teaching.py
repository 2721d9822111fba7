"""Teaching: look at OS-CMR only, call the class, then see the model's call, its CAM and the LGE."""

from __future__ import annotations

import streamlit as st

from deepoxymap import CLASSES
from deepoxymap.ui import analysis, featureview, figures, navigation, quiz, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Teaching")
st.caption(
    "Quiz: you see only the OS-CMR of a synthetic case. Decide whether it is healthy, ischemic scar, non-ischemic "
    "scar or edema; then the model's call, its class activation map and the LGE are revealed. Your score is kept "
    "for this session only."
)

with widgets.guard("start the quiz"):
    q = quiz.state_ui()
    if q is None:
        st.stop()
    score_col, count_col, _ = st.columns([1, 1, 3])
    score_col.metric("Score", f"{q.score} / {q.answered}")
    count_col.metric("Case", f"{q.position + 1} of {len(q.pool)}")
    lc = quiz.current_case(q)

    stack = quiz.question_stack(lc)
    k = st.slider("Slice (base → apex)", 1, stack.n_slices, stack.n_slices // 2 + 1, key=f"quiz_slice_{q.position}") - 1
    left, right = st.columns([3, 2])
    with left:
        fig = figures.image_figure(
            stack.image(k, 0),
            stack.geometry,
            window=quiz.window(stack),
            height=460,
            title=f"OS-CMR · {stack.timepoint or ''} · slice {k + 1}/{stack.n_slices}",
        )
        st.plotly_chart(fig, key="quiz_image", config={"displaylogo": False})
    with right:
        answer = st.radio("Your call", list(CLASSES), index=None, key=f"quiz_answer_{q.position}", disabled=q.revealed)
        if not q.revealed:
            if st.button("Check", type="primary", key="quiz_check", disabled=answer is None, icon=":material/done:"):
                quiz.answer(q, answer)
                st.rerun()
        else:
            truth = lc.case.label or "unknown"
            (st.success if q.last_correct else st.error)(
                f"You said **{q.last_answer}**; the reference class is **{truth}**"
                + (f" ({lc.case.truth.subtype})" if lc.case.truth.subtype else "")
                + "."
            )
            if st.button("Next case", type="primary", key="quiz_next", icon=":material/skip_next:"):
                quiz.next_case(q)
                st.rerun()

    if q.revealed:
        st.subheader("What the model said and where it looked")
        with widgets.guard("classify the quiz case"):
            view = analysis.predict(lc)
            st.markdown(
                f"Model call: **{view.call}** ({view.case_probs[view.call]:.0%}). Cyan: Grad-CAM contour at half its maximum; dashed yellow: the true lesion."
            )
            ref, rows, frames = analysis.reference_stack(lc)
            row = rows.index(k) if k in rows else 0
            cam = analysis.cam(lc, row, "gradcam", None, None)
            box = analysis.view_box(lc, ref, k)
            look = featureview.Look(0.45, figures.DEFAULT_CAM_COLORMAP, 0.5, True, True, height=380, box=box)
            lesion = analysis.reference_lesion(lc.case, ref.series_uid, k, frames[row])
            c1, c2 = st.columns(2)
            with c1:
                f1, _ = featureview.oscmr_figure(
                    ref, k, frames[row], cam.source, look, title="OS-CMR + Grad-CAM", reference=lesion
                )
                st.plotly_chart(f1, key="quiz_cam", config={"displaylogo": False})
            with c2:
                p = analysis.panel(lc, ref, k, analysis.PANEL_ROLES[0])
                f2, _ = featureview.other_figure(p, ref, cam.source, look, reference=p.labels)
                if f2 is None:
                    st.info(p.message or "No LGE in this case.")
                else:
                    st.plotly_chart(f2, key="quiz_lge", config={"displaylogo": False})
