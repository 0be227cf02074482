"""Licence allow-lists read SPDX expressions (OR, AND, WITH, parentheses, -only/-or-later/+)."""

from __future__ import annotations

import pytest

from nextedit.privacy.licenses import LicenseExpressionError, license_allowed
from nextedit.record import Example, Snapshot, Source
from nextedit.teacher.common import LicenseRefused, PrivacyConfig, check_license


@pytest.mark.parametrize(("expression", "allow", "ok"), [
    ("MIT OR Apache-2.0", ["MIT"], True),
    ("Apache-2.0 OR MIT", ["mit"], True),
    ("(MIT OR Apache-2.0)", ["Apache-2.0"], True),
    ("MIT AND Apache-2.0", ["MIT"], False),
    ("MIT AND Apache-2.0", ["MIT", "Apache-2.0"], True),
    ("GPL-3.0-only OR MIT", ["BSD-3-Clause"], False),
    ("GPL-2.0-or-later", ["GPL-2.0"], True),
    ("GPL-2.0+", ["GPL-2.0-only"], True),
    ("GPL-2.0 WITH Classpath-exception-2.0", ["GPL-2.0"], True),
    ("GPL-2.0 WITH Classpath-exception-2.0", ["GPL-2.0 WITH Classpath-exception-2.0"], True),
    ("LGPL-2.1 WITH LLVM-exception", ["MIT"], False),
    ("(MIT AND BSD-2-Clause) OR GPL-3.0", ["MIT", "BSD-2-Clause"], True),
    ("MIT AND (BSD-2-Clause OR GPL-3.0)", ["MIT", "GPL-3.0"], True),
    ("mit or apache-2.0", ["Apache-2.0"], True),
    ("MIT", ["MIT OR Apache-2.0"], False),
    ("MIT OR Apache-2.0", ["MIT OR Apache-2.0"], True),
    ("", ["MIT"], False),
    (None, ["MIT"], False),
])
def test_spdx_expressions_against_allow_lists(expression, allow, ok):
    assert license_allowed(expression, allow) is ok


@pytest.mark.parametrize("bad", ["MIT OR", "(MIT", "OR MIT", "MIT Apache-2.0", "MIT AND AND BSD", "MIT; rm"])
def test_malformed_expressions_are_errors(bad):
    with pytest.raises(LicenseExpressionError):
        license_allowed(bad, ["MIT"])


def example(license: str | None) -> Example:
    return Example(id="e1", snapshot=Snapshot(path="a.py", text="x = 1\n", cursor=0), source=Source(license=license))


def test_the_teacher_allow_list_takes_expressions():
    privacy = PrivacyConfig(licenses=["MIT"])
    check_license(example("MIT OR Apache-2.0"), privacy)  # was refused: the string is not "MIT"
    with pytest.raises(LicenseRefused, match="'GPL-3.0 AND MIT' is not in the allow-list"):
        check_license(example("GPL-3.0 AND MIT"), privacy)
    with pytest.raises(LicenseRefused, match="field source.license: not an SPDX expression"):
        check_license(example("MIT OR"), privacy)
