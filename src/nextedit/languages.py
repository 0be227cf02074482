"""Languages by file extension: names, line-comment prefixes and tree-sitter grammars."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Language:
    """A programming language nextedit knows about."""

    name: str
    extensions: tuple[str, ...]
    line_comment: str = "//"
    grammar_module: str | None = None
    grammar_function: str = "language"


LANGUAGES: tuple[Language, ...] = (
    Language("python", (".py", ".pyi"), "#", "tree_sitter_python"),
    Language("rust", (".rs",), "//", "tree_sitter_rust"),
    Language("javascript", (".js", ".mjs", ".cjs", ".jsx"), "//", "tree_sitter_javascript"),
    Language("typescript", (".ts", ".mts", ".cts"), "//", "tree_sitter_typescript", "language_typescript"),
    Language("tsx", (".tsx",), "//", "tree_sitter_typescript", "language_tsx"),
    Language("go", (".go",), "//", "tree_sitter_go"),
    Language("java", (".java",), "//", "tree_sitter_java"),
    Language("c", (".c", ".h"), "//"),
    Language("cpp", (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx"), "//"),
    Language("csharp", (".cs",), "//"),
    Language("kotlin", (".kt", ".kts"), "//"),
    Language("swift", (".swift",), "//"),
    Language("scala", (".scala",), "//"),
    Language("ruby", (".rb",), "#"),
    Language("php", (".php",), "//"),
    Language("shell", (".sh", ".bash", ".zsh"), "#"),
    Language("lua", (".lua",), "--"),
    Language("sql", (".sql",), "--"),
    Language("haskell", (".hs",), "--"),
    Language("elixir", (".ex", ".exs"), "#"),
    Language("terraform", (".tf", ".hcl"), "#"),
    Language("yaml", (".yaml", ".yml"), "#"),
    Language("toml", (".toml",), "#"),
    Language("zig", (".zig",), "//"),
    Language("dart", (".dart",), "//"),
    Language("css", (".css", ".scss"), "//"),
    Language("html", (".html", ".htm", ".vue", ".svelte"), "//"),
    Language("markdown", (".md",), "#"),
)

_BY_EXTENSION = {ext: lang for lang in LANGUAGES for ext in lang.extensions}


@functools.lru_cache(maxsize=4096)
def language_for_path(path: str) -> Language | None:
    """The language of a file from its extension, or None when unknown (memoized: asked per sample)."""
    return _BY_EXTENSION.get(PurePosixPath(path).suffix.lower())


def language_name(path: str) -> str:
    """The language name of a file, or "other"."""
    lang = language_for_path(path)
    return lang.name if lang else "other"


def line_comment(path: str) -> str:
    """The line-comment prefix for a file (`//` when unknown)."""
    lang = language_for_path(path)
    return lang.line_comment if lang else "//"


@functools.cache
def ts_language(name: str) -> Any | None:
    """The tree-sitter Language for a language name, or None when no grammar wheel is installed."""
    lang = next((lang for lang in LANGUAGES if lang.name == name), None)
    if lang is None or lang.grammar_module is None:
        return None
    try:
        import tree_sitter

        module = importlib.import_module(lang.grammar_module)
        return tree_sitter.Language(getattr(module, lang.grammar_function)())
    except (ImportError, AttributeError):
        return None


def ts_parser(name: str) -> Any | None:
    """A tree-sitter Parser for a language name, or None when unavailable."""
    language = ts_language(name)
    if language is None:
        return None
    import tree_sitter

    return tree_sitter.Parser(language)
