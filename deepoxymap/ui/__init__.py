"""The only package code that imports streamlit: cached resources, widgets, session keys."""
