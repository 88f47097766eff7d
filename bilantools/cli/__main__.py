"""`python -m bilantools.cli`: the command line."""

from bilantools.cli.main import main

main()
