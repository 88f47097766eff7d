"""`python -m bilantools`: the command line."""

from bilantools.cli.main import main

main()
