"""``python -m onnxdeploy.cli``: the CLI."""

from onnxdeploy.cli import main

main()
