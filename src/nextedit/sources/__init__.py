"""Importers and exporters that bring outside data (Zed specs and Markdown evals, ...) into example records."""
