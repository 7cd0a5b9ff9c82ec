"""``onnxdeploy report``: one self-contained HTML page from run folders and JSON results
(torch-free)."""

from __future__ import annotations

import click

from onnxdeploy.cli.output import finish


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the page.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def report_command(inputs, output, as_json):
    """Write one HTML page (no network, inline SVG) from INPUTS: run folders, bench JSON, gate
    --json, quantize --json, prune-channels --json or compare --json output."""
    from onnxdeploy.html_report import write_html_report

    finish(lambda: write_html_report(list(inputs), output), as_json)
