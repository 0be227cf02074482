"""Definitions of named things (functions, classes, types, ...) in source files, found with tree-sitter queries."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from nextedit.languages import language_for_path, line_comment, ts_language, ts_parser

# One query per language. Every pattern captures the definition node as @def and its name as @name.
# Variables/constants are only taken at module (top) level so local variables do not flood the index.
QUERIES: dict[str, str] = {
    "python": """
        (function_definition name: (identifier) @name) @def
        (class_definition name: (identifier) @name) @def
        (module (expression_statement (assignment left: (identifier) @name)) @def)
    """,
    "javascript": """
        (function_declaration name: (identifier) @name) @def
        (generator_function_declaration name: (identifier) @name) @def
        (class_declaration name: (identifier) @name) @def
        (method_definition name: (property_identifier) @name) @def
        (program (lexical_declaration (variable_declarator name: (identifier) @name)) @def)
        (program (variable_declaration (variable_declarator name: (identifier) @name)) @def)
        (export_statement (lexical_declaration (variable_declarator name: (identifier) @name)) @def)
    """,
    "typescript": """
        (function_declaration name: (identifier) @name) @def
        (generator_function_declaration name: (identifier) @name) @def
        (function_signature name: (identifier) @name) @def
        (class_declaration name: (type_identifier) @name) @def
        (abstract_class_declaration name: (type_identifier) @name) @def
        (interface_declaration name: (type_identifier) @name) @def
        (type_alias_declaration name: (type_identifier) @name) @def
        (enum_declaration name: (identifier) @name) @def
        (method_definition name: (property_identifier) @name) @def
        (method_signature name: (property_identifier) @name) @def
        (program (lexical_declaration (variable_declarator name: (identifier) @name)) @def)
        (export_statement (lexical_declaration (variable_declarator name: (identifier) @name)) @def)
    """,
    "rust": """
        (function_item name: (identifier) @name) @def
        (function_signature_item name: (identifier) @name) @def
        (struct_item name: (type_identifier) @name) @def
        (enum_item name: (type_identifier) @name) @def
        (union_item name: (type_identifier) @name) @def
        (trait_item name: (type_identifier) @name) @def
        (type_item name: (type_identifier) @name) @def
        (const_item name: (identifier) @name) @def
        (static_item name: (identifier) @name) @def
        (macro_definition name: (identifier) @name) @def
    """,
    "go": """
        (function_declaration name: (identifier) @name) @def
        (method_declaration name: (field_identifier) @name) @def
        (type_declaration (type_spec name: (type_identifier) @name)) @def
        (type_declaration (type_alias name: (type_identifier) @name)) @def
        (source_file (const_declaration (const_spec name: (identifier) @name)) @def)
        (source_file (var_declaration (var_spec name: (identifier) @name)) @def)
    """,
    "java": """
        (class_declaration name: (identifier) @name) @def
        (interface_declaration name: (identifier) @name) @def
        (enum_declaration name: (identifier) @name) @def
        (record_declaration name: (identifier) @name) @def
        (annotation_type_declaration name: (identifier) @name) @def
        (method_declaration name: (identifier) @name) @def
        (field_declaration (variable_declarator name: (identifier) @name)) @def
    """,
}
QUERIES["tsx"] = QUERIES["typescript"]

# Node types whose kind is not obvious from the type name.
_KIND_BY_NODE = {
    "function_definition": "function", "function_declaration": "function",
    "generator_function_declaration": "function", "function_item": "function",
    "function_signature": "function", "function_signature_item": "function",
    "method_definition": "method", "method_signature": "method", "method_declaration": "method",
    "class_definition": "class", "class_declaration": "class",
    "abstract_class_declaration": "class", "record_declaration": "class",
    "interface_declaration": "interface", "annotation_type_declaration": "interface",
    "trait_item": "trait", "struct_item": "struct", "union_item": "struct",
    "enum_item": "enum", "enum_declaration": "enum",
    "type_item": "type", "type_alias_declaration": "type", "type_declaration": "type",
    "const_item": "const", "static_item": "const", "const_declaration": "const",
    "macro_definition": "macro",
}

# Parents that belong to the definition text (decorators, export keywords, attributes).
_WRAPPERS = {"decorated_definition", "export_statement"}

# Ancestors that make a definition a member (reached through `obj.name`, not a bare name).
_CONTAINERS = {"class_definition", "class_declaration", "abstract_class_declaration", "class_body",
               "interface_declaration", "interface_body", "enum_declaration", "record_declaration",
               "impl_item", "trait_item", "object_type"}


@dataclass(frozen=True)
class Definition:
    """A named definition in a file: 0-based inclusive line range of the whole node."""

    name: str
    kind: str
    path: str
    start_line: int
    end_line: int
    member: bool = False


@functools.cache
def _query(language: str) -> Any | None:
    source = QUERIES.get(language)
    lang = ts_language(language)
    if source is None or lang is None:
        return None
    import tree_sitter

    return tree_sitter.Query(lang, source)


def supported(path: str) -> bool:
    """True when definitions can be extracted from this file (known language with a grammar)."""
    lang = language_for_path(path)
    return lang is not None and _query(lang.name) is not None


def _kind(node: Any) -> str:
    kind = _KIND_BY_NODE.get(node.type)
    if kind:
        return kind
    if node.type in ("field_declaration",):
        return "const"
    return "variable"


def _is_member(node: Any) -> bool:
    if node.type in ("method_declaration", "method_definition", "method_signature"):
        return True
    parent = node.parent
    while parent is not None:
        if parent.type in _CONTAINERS:
            return True
        parent = parent.parent
    return False


def _is_java_constant(node: Any) -> bool:
    for child in node.children:
        if child.type == "modifiers":
            words = child.text.decode("utf-8", "replace").split()
            return "static" in words and "final" in words
    return False


def extract_definitions(path: str, text: str) -> list[Definition]:
    """All definitions in one file, in file order; [] for languages without a grammar or query."""
    lang = language_for_path(path)
    if lang is None:
        return []
    query = _query(lang.name)
    parser = ts_parser(lang.name)
    if query is None or parser is None:
        return []
    import tree_sitter

    tree = parser.parse(text.encode("utf-8"))
    out: list[Definition] = []
    seen: set[tuple[str, int]] = set()
    for _pattern, captures in tree_sitter.QueryCursor(query).matches(tree.root_node):
        defs, names = captures.get("def"), captures.get("name")
        if not defs or not names:
            continue
        node, name_node = defs[0], names[0]
        if node.type == "field_declaration" and not _is_java_constant(node):
            continue
        outer = node
        while outer.parent is not None and outer.parent.type in _WRAPPERS:
            outer = outer.parent
        name = name_node.text.decode("utf-8", "replace")
        key = (name, outer.start_point[0])
        if key in seen:
            continue
        seen.add(key)
        end_row = outer.end_point[0]
        if outer.end_point[1] == 0 and end_row > outer.start_point[0]:
            end_row -= 1
        out.append(Definition(name, _kind(node), path, outer.start_point[0], end_row,
                              member=_is_member(node)))
    out.sort(key=lambda d: (d.start_line, d.end_line, d.name))
    return out


def definition_text(definition: Definition, lines: list[str], *, max_lines: int = 24) -> str:
    """The definition's source lines; long bodies are cut to the first `max_lines` lines plus a marker."""
    body = lines[definition.start_line : definition.end_line + 1]
    if len(body) <= max_lines:
        return "".join(body)
    kept = body[:max_lines]
    last = kept[-1]
    indent = last[: len(last) - len(last.lstrip())]
    marker = f"{indent}{line_comment(definition.path)} ... ({len(body) - max_lines} more lines)\n"
    if not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    return "".join(kept) + marker
