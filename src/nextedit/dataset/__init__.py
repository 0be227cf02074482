"""Everyday dataset commands as library code: show one example, stats, split, dedup."""
