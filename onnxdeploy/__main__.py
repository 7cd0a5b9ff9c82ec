"""``python -m onnxdeploy``: the CLI."""

from onnxdeploy.cli import main

main()
