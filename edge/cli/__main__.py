"""`python -m edge.cli`: the `edge` console script, for a tree that is not installed."""

from edge.cli import main

main()
