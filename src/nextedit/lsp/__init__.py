"""`nextedit lsp`: the editor integration — a language server that asks `nextedit serve` for next edits."""
