"""`python -m nextedit` runs the command-line interface."""

from nextedit.cli import main

main()
