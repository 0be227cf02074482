"""Mining next-edit examples from git history: commit streaming, filters, typing order, splits, excerpts."""
