"""Privacy: the one secret scrubber (texts, diffs, records, server events) and SPDX licence allow-lists.

`scrub.Scrubber` replaces secrets with placeholders (file-type aware: pass the real path);
`records` applies it to snapshots, patches and whole examples keeping offsets and lines valid;
`licenses.license_allowed` matches SPDX expressions against an allow-list. See docs/privacy.md.
"""
