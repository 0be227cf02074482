"""Student prompt formats (zeta1, seed-multi-region, sweep, chat): render examples to prompt/target, parse outputs."""

from nextedit.formats.base import (
    FORMATS,
    FormatError,
    FormatOptions,
    Parsed,
    Rendered,
    StudentFormat,
    format_names,
    get_format,
)

__all__ = ["FORMATS", "FormatError", "FormatOptions", "Parsed", "Rendered", "StudentFormat", "format_names",
           "get_format"]
