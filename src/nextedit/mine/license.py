"""SPDX license id of a repository from its LICENSE/COPYING file, by matching signature phrases of common licenses."""

from __future__ import annotations

import json
import re
import tomllib

LICENSE_FILE = re.compile(r"^(licen[sc]e|copying|unlicense)([.-].*)?$", re.IGNORECASE)

_SPDX_LINE = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+-]+(?:\s+(?:OR|AND|WITH)\s+[A-Za-z0-9.+-]+)*)")

# (spdx id, phrases that must all occur in the normalised text), checked in order: the more
# specific licenses come before the ones whose phrases they contain.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AGPL-3.0", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("LGPL-2.0", ("gnu library general public license", "version 2")),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("BSL-1.0", ("boost software license", "version 1.0")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",
             "with or without fee is hereby granted")),
    ("ISC", ("permission to use, copy, modify, and distribute this software for any purpose",
             "with or without fee is hereby granted")),
    ("MIT", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "names of its contributors may")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",
                      "redistributions in binary form must reproduce")),
    ("CC0-1.0", ("cc0 1.0 universal",)),
)


def _normalise(text: str) -> str:
    text = text.lower().replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"(?m)^\s*(?:[*#>]+|//+|;+|--)", " ", text)  # comment leaders and markdown quotes
    return re.sub(r"\s+", " ", text)


def detect_license(text: str) -> str | None:
    """The SPDX id of a license text (MIT, Apache-2.0, BSD-2/3-Clause, GPL/LGPL/AGPL, MPL-2.0, ISC,
    Unlicense, ...), or None when it matches no known signature."""
    head = text[:4096]
    match = _SPDX_LINE.search(head)
    if match:
        return match.group(1).strip()
    norm = _normalise(text[:20000])
    for spdx, phrases in _SIGNATURES:
        if all(phrase in norm for phrase in phrases):
            return spdx
    return None


def is_license_file(name: str) -> bool:
    """True for LICENSE, LICENSE.md, LICENCE.txt, COPYING, UNLICENSE and the like (top-level file names)."""
    return LICENSE_FILE.match(name) is not None


MANIFESTS = ("pyproject.toml", "Cargo.toml", "package.json", "composer.json")


def manifest_license(name: str, text: str) -> str | None:
    """The license a package manifest declares (pyproject.toml / Cargo.toml `license`, package.json
    `license`), when it looks like an SPDX expression; None otherwise."""
    value: object = None
    try:
        if name.endswith(".toml"):
            data = tomllib.loads(text)
            section = data.get("project") or data.get("package") or data.get("tool", {}).get("poetry") or {}
            value = section.get("license") if isinstance(section, dict) else None
            if isinstance(value, dict):
                value = value.get("text")
        elif name.endswith(".json"):
            data = json.loads(text)
            value = data.get("license") if isinstance(data, dict) else None
    except (ValueError, AttributeError):
        return None
    if isinstance(value, str) and _SPDX_EXPRESSION.fullmatch(value.strip()):
        return value.strip()
    return None


_SPDX_EXPRESSION = re.compile(r"[A-Za-z0-9.+-]+(?:\s+(?:OR|AND|WITH)\s+[A-Za-z0-9.+-]+)*")
