"""Related-code retrieval (tree-sitter definitions, BM25 over chunks) and linter diagnostics for snapshots."""
