"""Model: the full model card, library versions, and loading another model (validated)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from deepoxymap.config import settings
from deepoxymap.errors import DeepOxyMapError, Unavailable
from deepoxymap.ui import figures, modelinfo, navigation, state, widgets

navigation.ensure_app()
widgets.show_flash()
st.title("Model")
path = modelinfo.current_path()
shipped = settings().model_path
st.markdown(
    f"This session uses **`{path.name}`**" + (" (the shipped model)." if path == shipped else f" from `{path.parent}`.")
)

card_col, side = st.columns([3, 2])
with card_col:
    st.subheader("Model card")
    with widgets.guard("read the model card"):
        card = modelinfo.read_card(path)
        if card is None:
            st.info(modelinfo.NO_MODEL.format(path=path) if not path.is_file() else f"No card beside `{path.name}`.")
        else:
            modelinfo.card_brief_ui(path, link=False)
            sec = modelinfo.card_sections(card)
            st.markdown("**Overview**")
            st.dataframe(sec["overview"], hide_index=True, key="model_overview")
            if not sec["test"].empty:
                st.markdown("**Test metrics** (synthetic test subjects, case level)")
                st.dataframe(sec["test"], hide_index=True, key="model_test")
                if sec["note"]:
                    st.caption(sec["note"])
                if sec["reproduction"]:
                    st.caption(sec["reproduction"])
            if sec["confusion"]:
                st.plotly_chart(
                    figures.confusion_figure(sec["confusion"], card.get("classes") or []),
                    key="model_confusion",
                    config={"displaylogo": False},
                )
            if not sec["training"].empty:
                st.markdown("**Training**")
                st.dataframe(sec["training"], hide_index=True, key="model_training")
            if sec["command"]:
                st.code(str(sec["command"]), language="bash")
            if not sec["preprocessing"].empty:
                st.markdown("**Preprocessing** (the same code path at training and inference)")
                st.dataframe(sec["preprocessing"], hide_index=True, key="model_pre")
            with st.expander("Everything in the card (JSON)", expanded=False):
                st.json(card, expanded=1)

with side:
    st.subheader("Library versions")
    with widgets.guard("list library versions"):
        st.dataframe(modelinfo.versions_table(card if path.is_file() else None), hide_index=True, key="model_versions")

    st.subheader("Load another model")
    st.caption(
        "A `.keras` file with its card (same name, `.json`) beside it. It is validated before use; "
        "if anything is wrong the current model stays."
    )
    new_path = st.text_input("Path to a .keras file", key="model_new_path", placeholder="/path/to/model.keras")
    if st.button("Load and validate", key="model_load", disabled=not new_path.strip(), icon=":material/verified:"):
        candidate = Path(new_path.strip()).expanduser()
        try:
            with st.spinner("Loading and validating…"):
                modelinfo.loaded_model(candidate)
        except (Unavailable, DeepOxyMapError) as exc:
            st.error(f"This model cannot be used, so the current model stays: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever the file is, the page must go on
            st.error(
                f"This file could not be loaded as a DeepOxyMap model ({type(exc).__name__}); the current model stays."
            )
        else:
            st.session_state[state.MODEL_PATH] = str(candidate.resolve())
            state.flash(f"Now using `{candidate.name}` in this session.")
            st.rerun()
    if path != shipped and st.button("Back to the shipped model", key="model_reset", icon=":material/undo:"):
        st.session_state.pop(state.MODEL_PATH, None)
        st.rerun()
