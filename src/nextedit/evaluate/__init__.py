"""Evaluation: predict/score stages, the summary JSON, the HTML report and run comparison."""
