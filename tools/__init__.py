"""Command-line wrappers that print the project's validation checks (see README.md)."""
