"""stub"""
import streamlit as st

st.title("cohort_audit")
