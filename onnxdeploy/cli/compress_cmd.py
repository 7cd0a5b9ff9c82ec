"""``onnxdeploy compress``: prune, fine-tune and distil a PyTorch model; save a checkpoint."""

from __future__ import annotations

import click

from onnxdeploy.cli.groups import cluster_option, model_input_options, option_group
from onnxdeploy.cli.options import NON_NEGATIVE, POSITIVE, Finite, target_options
from onnxdeploy.cli.output import emit_json, progress, say
from onnxdeploy.compress.request import CompressConfig


def _config(prune_channels, **values) -> CompressConfig:
    return CompressConfig(channel_ratio=prune_channels, **values)


# how to prune, recover and time: CompressConfig
config_options = option_group(
    "config",
    _config,
    click.option(
        "--sparsity", type=NON_NEGATIVE, help="Unstructured magnitude sparsity target, e.g. 0.8."
    ),
    click.option(
        "--scope", type=click.Choice(["global", "layer"]), default="global", show_default=True
    ),
    click.option(
        "--prune-channels",
        "prune_channels",
        type=NON_NEGATIVE,
        help="Fraction of channels to zero, e.g. 0.5.",
    ),
    click.option(
        "--target-latency",
        type=Finite(low=0, high=1, low_open=True, high_open=True),
        help="Instead of --prune-channels: this fraction of the dense model's latency as deployed "
        "(exported, pruned, timed here at --target-batch/--target-threads), e.g. 0.5.",
    ),
    click.option(
        "--target-macs",
        type=Finite(low=0, high=1, low_open=True, high_open=True),
        help="Instead of --prune-channels: this fraction of the dense model's MACs.",
    ),
    target_options,
    click.option(
        "--round-to",
        type=click.IntRange(min=1),
        default=CompressConfig.round_to,
        show_default=True,
        help="Keep a multiple of this many channels per pruned layer (CPU kernels work in SIMD "
        "blocks: odd widths can run slower than dense); 1 for any width.",
    ),
    click.option("--criterion", type=click.Choice(["l1", "l2"]), default="l1", show_default=True),
    click.option(
        "--sensitivity/--uniform",
        default=True,
        show_default=True,
        help="Allocate channels per group by a sensitivity scan, or the same ratio everywhere.",
    ),
    click.option(
        "--steps",
        type=int,
        default=1,
        show_default=True,
        help="Iterative schedule: prune, fine-tune, repeat.",
    ),
    click.option(
        "--epochs",
        type=int,
        default=3,
        show_default=True,
        help="Fine-tuning epochs after each step.",
    ),
    click.option("--lr", type=POSITIVE, default=1e-3, show_default=True),
    click.option(
        "--distill",
        is_flag=True,
        help="Fine-tune with knowledge distillation from the dense model.",
    ),
    click.option("--temperature", type=POSITIVE, default=4.0, show_default=True),
    click.option("--alpha", type=Finite(low=0, high=1), default=0.7, show_default=True),
    click.option(
        "--low-bit",
        type=click.Choice(["binary", "ternary"]),
        default=None,
        help="Experimental: binary or ternary inner weights, straight-through fine-tuning.",
    ),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option(
        "--metric",
        default=None,
        metavar="FILE.py:FN",
        help="Judge recovery by your own score, higher is better: fn(outputs, data) -> float on the "
        "held-out split (instead of top-1 or output fidelity).",
    ),
)
input_options = model_input_options(example_inputs=False)


@click.command("compress")
@click.argument("model")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to save the state_dict.",
)
@click.option(
    "--checkpoint",
    type=click.Path(),
    help="Trained weights (weights_only=True); trains first if omitted.",
)
@click.option(
    "--data",
    default="digits",
    show_default=True,
    help="digits, or an .npz with x_train, y_train, x_val, y_val (without y_*: label-free, with --distill).",
)
@click.option(
    "--teacher",
    type=click.Path(),
    help="Teacher checkpoint (same architecture); implies --distill.",
)
@input_options
@config_options
@cluster_option("Run the sensitivity probes in parallel")
@click.option("--json", "as_json", is_flag=True)
def compress_command(
    model, output, checkpoint, data, teacher, given_inputs, config, where, as_json
):
    """Prune MODEL (magnitude and/or channels), fine-tune or distil, and save a checkpoint."""
    named, shapes = given_inputs
    from onnxdeploy.compress.api import compress  # torch: after the flags are checked

    result = compress(
        model,
        output,
        config,
        checkpoint=checkpoint,
        data=data,
        input_shapes=shapes,
        inputs=named,
        teacher_checkpoint=teacher,
        where=where,
        progress=progress,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        say(str(result))


# library parameter names -> this command's flags, where they differ
compress_command.param_flags = {
    "channel_ratio": "--prune-channels",
    "input_shape": "--input-shape",
    "inputs": "--input",
}
