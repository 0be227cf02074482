"""Settled data: the settle tracker editors port, trace import, and the settle filter (candidates vs settled state).

Modules: `tracker` (quiet period / TTL rules), `traces` (trace events -> examples), `distance`
(candidate-to-settled distances), `stage` (the `settle` pipeline stage), `band` (keep/drop by the
distance band), `report` (HTML + JSON report). Import from the modules; nothing heavy here.
"""
