"""stub"""
import streamlit as st

st.title("model_card")
