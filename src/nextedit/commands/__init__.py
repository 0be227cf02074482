"""CLI subcommands: each module here defines `register(app)` and is picked up by `nextedit.cli`."""
