"""Learning from users' accepts and rejects: feedback datasets, offline evaluation, a simulated loop (docs/feedback.md)."""
