"""Turn a model reference (zoo name, ``file.py:factory``, ``pkg.module:factory``,
``hf:PATH_OR_ID``) and
an optional checkpoint into a torch module in eval mode, with one-line errors for every way it can
go wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from onnxdeploy.data.shapes import parse_shape
from onnxdeploy.errors import UserError
from onnxdeploy.user_code import load_callable
from onnxdeploy.exporter.hf import is_hf, load_hf
from onnxdeploy.models import ZOO, get_zoo_entry


def is_onnx(reference: str) -> bool:
    """The reference names an ONNX (or ORT-format) file, not a PyTorch source."""
    return reference.lower().endswith((".onnx", ".ort"))


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``'1x1x32x32'`` -> ``(1, 1, 32, 32)``; UserError on anything else."""
    return parse_shape(text, what="input_shape", param="input_shape")


def files_read(reference: str, checkpoint: str | None = None) -> list[Path]:
    """The files and folders a model reference reads (an ``hf:`` folder with its weights, config
    and tokenizer, a ``file.py`` factory, an ONNX file, the checkpoint): what no output may
    replace."""
    if is_hf(reference):
        where = Path(reference[3:])
        paths = [where] if reference[3:] and where.exists() else []
    elif ":" in reference and reference.rpartition(":")[0].endswith(".py"):
        paths = [Path(reference.rpartition(":")[0])]
    else:
        paths = [Path(reference)] if Path(reference).exists() else []
    return paths + ([Path(checkpoint)] if checkpoint else [])


@dataclass
class ModelSource:
    """A loaded torch module and what we know of its inputs (``inputs`` are named and typed when the
    user said so: then forward takes them by name)."""

    module: object
    input_shapes: list[tuple[int, ...]]
    reference: str
    checkpoint: str | None = None
    inputs: list = field(default_factory=list)  # ExportInput
    by_name: bool = False


def _load_factory(reference: str):
    if not reference.rpartition(":")[0] or not reference.rpartition(":")[2]:
        raise UserError(
            f"{reference}: expected a zoo name, path/to/file.py:factory or package.module:factory"
        )
    factory = load_callable(reference, what="model factory")
    try:
        return factory()
    except SystemExit as exc:
        raise UserError(
            f"{reference}: the factory called sys.exit({exc.code!r}) instead of returning a model"
        ) from exc
    except Exception as exc:
        raise UserError(
            f"{reference}: calling the factory failed: {type(exc).__name__}: {exc}"
        ) from exc


def load_checkpoint(module, checkpoint: str | Path) -> None:
    """Load a state_dict (bare, or under "state_dict"/"model") with ``weights_only=True``."""
    import pickle

    import torch

    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise UserError(
                f"{path}: not a readable PyTorch checkpoint (corrupt or another format)"
            ) from exc
        raise UserError(
            f"{path}: refused: the checkpoint holds pickled Python objects, not just tensors "
            "(loaded with weights_only=True; nothing in it was executed)"
        ) from exc
    except Exception as exc:
        raise UserError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})"
        ) from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(
            f"{path}: expected a state_dict of tensors (bare or under 'state_dict'/'model')"
        )
    result = module.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (e.g. {result.missing_keys[0]})")
    if result.unexpected_keys:
        problems.append(
            f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[0]})"
        )
    if problems:
        raise UserError(f"{path}: checkpoint does not match the model: {'; '.join(problems)}")


def load_state_checked(module, checkpoint):
    try:
        load_checkpoint(module, checkpoint)
    except RuntimeError as exc:  # size mismatches come from load_state_dict itself
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise UserError(f"{checkpoint}: checkpoint does not match the model: {detail}") from exc


def load_source(
    reference: str,
    *,
    checkpoint: str | None = None,
    input_shapes: list[tuple[int, ...]] | None = None,
    inputs: list | None = None,
) -> ModelSource:
    """Build the model named by ``reference``, load ``checkpoint`` into it, and settle its input
    shapes."""
    import torch

    default_inputs = None
    if reference in ZOO:
        entry = get_zoo_entry(reference)
        module = entry.build()
        default_shapes = entry.input_spec()
    elif is_hf(reference):
        module, default_inputs = load_hf(reference)
        default_shapes = None
    elif ":" in reference:
        module = _load_factory(reference)
        default_shapes = None
    else:
        get_zoo_entry(reference)  # raises the "unknown model" error listing the zoo
        raise AssertionError("unreachable")
    if not isinstance(module, torch.nn.Module):
        raise UserError(
            f"{reference}: the factory returned {type(module).__name__}, not a torch.nn.Module"
        )
    if checkpoint:
        load_state_checked(module, checkpoint)
    if not inputs and not input_shapes and default_inputs:
        inputs = default_inputs  # what the model itself says it takes, by name
    shapes = [tuple(i.shape) for i in inputs] if inputs else (input_shapes or default_shapes)
    if not shapes:
        raise UserError(
            f"{reference}: input_shapes is required for a model outside the zoo",
            param="input_shapes",
        )
    module.eval()
    return ModelSource(
        module,
        list(shapes),
        reference,
        str(checkpoint) if checkpoint else None,
        list(inputs or []),
        bool(inputs),
    )
