"""``package``: convert a model to onnxruntime's ORT format for a target, write the operator config
of
a reduced onnxruntime build and a manifest, and check that the ORT file computes what the ONNX
model does.

The conversion and the config are onnxruntime's own
(``onnxruntime.tools.convert_onnx_models_to_ort``);
this module stages them, verifies the round trip and records the provenance. The package is built
in a temporary folder beside the destination and renamed into place only when complete and verified.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from onnxdeploy.atomic import atomic_dir, ensure_writable_dir, write_json
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.generate.signature import is_kv_decoder
from onnxdeploy.hashing import sha256_file
from onnxdeploy.onnx_io import file_bytes, is_large, load_model, save_model
from onnxdeploy.output_diff import CompareResult, compare_outputs
from onnxdeploy.package.manifest import build_manifest
from onnxdeploy.package.round_trip import round_trip
from onnxdeploy.package.targets import get_target
from onnxdeploy.progress import silent
from onnxdeploy.schemas import tagged

MODEL_NAME = "model"
LEVEL_VARIABLE = "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"


@dataclass(frozen=True)
class PackageResult:
    folder: str
    target: str
    files: dict  # relative path -> {"bytes", "sha256"}
    operators: int  # operator kinds the reduced build must include
    comparison: CompareResult
    manifest: dict = field(repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.comparison)

    def to_json(self) -> dict:
        return tagged(
            "package",
            {
                "folder": self.folder,
                "target": self.target,
                "files": self.files,
                "operators": self.operators,
                "passed": self.passed,
                "comparison": self.comparison.to_json(),
                "manifest": self.manifest,
            },
        )

    def __str__(self) -> str:
        from onnxdeploy.tables import text_table

        rows = [[n, f"{f['bytes']:,}", f["sha256"][:16]] for n, f in self.files.items()]
        lines = [
            f"package for {self.target} -> {self.folder}",
            text_table(["file", "bytes", "sha256"], rows),
        ]
        c = self.comparison
        lines += [
            f"required operators: {self.operators} kinds (for a reduced onnxruntime build)",
            f"ORT format vs ONNX: max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e} -> "
            f"{'PASS' if c else 'FAIL'}",
        ]
        return "\n".join(lines)


def _check_destination(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(
            f"{folder}: exists and is not an empty folder; a package is never written over files"
        )


def _convert(onnx_path: Path, folder: Path, target) -> tuple[Path, Path]:
    """The ORT-format model and the required-operators config, written by onnxruntime's
    converter."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with _quiet_converter(target.level):
        convert_onnx_models_to_ort(
            onnx_path,
            output_dir=folder,
            optimization_styles=[OptimizationStyle[target.style]],
            target_platform=target.platform,
        )
    ort_files = sorted(folder.glob(f"{MODEL_NAME}*.ort"))
    configs = sorted(folder.glob("*.config"))
    if len(ort_files) != 1 or len(configs) != 1:
        raise RuntimeError(
            f"onnxruntime's converter wrote {[p.name for p in folder.iterdir()]}, expected one "
            ".ort and one .config"
        )
    ort_path = ort_files[0].rename(folder / f"{MODEL_NAME}.ort")
    config = configs[0].rename(folder / "required_operators.config")
    # its comment names the temporary path it was generated from; the package names its own file
    lines = config.read_text(encoding="utf-8").splitlines()
    config.write_text(
        "\n".join(f"# - {MODEL_NAME}.ort" if line.startswith("# - ") else line for line in lines)
        + "\n",
        encoding="utf-8",
    )
    return ort_path, config


@contextlib.contextmanager
def _quiet_converter(level: str):
    """The converter narrates on stdout (kept clean for --json) and logs INFO lines; its
    optimization
    level is read from an environment variable."""
    import logging

    loggers = [
        logging.getLogger(name)
        for name in ("ort_format_model", "ort_format_model.utils", "convert_onnx_models_to_ort")
    ]
    levels = [log.level for log in loggers]
    saved = os.environ.get(LEVEL_VARIABLE)
    os.environ[LEVEL_VARIABLE] = level
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for log, old in zip(loggers, levels):
            log.setLevel(old)
        if saved is None:
            os.environ.pop(LEVEL_VARIABLE, None)
        else:
            os.environ[LEVEL_VARIABLE] = saved


def _operators(config: Path) -> int:
    """Operator kinds listed in a required-operators config ("domain;opset;Op1,Op2" lines)."""
    count = 0
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            count += len(line.split(";")[-1].split(","))
    return count


def _describe_files(folder: Path) -> dict:
    return {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def package(
    model_path: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    target: str = "x86",
    atol: float = 1e-4,
    rtol: float = 1e-3,
    inputs=None,
    shapes: dict | None = None,
    progress: Callable[[str], None] = silent,
) -> PackageResult:
    """Write ``folder`` (new or empty): ``model.onnx`` (+ external data), ``model.ort``,
    ``required_operators.config`` and ``manifest.json``. CheckFailed (exit 1, nothing written) when
    the ORT-format model's outputs differ from the ONNX model's beyond ``atol`` + ``rtol`` *
    |reference|. The round trip runs on ``inputs`` (an .npz/.npy path or arrays by input name; at
    most 8 samples), else on generated inputs with ``shapes`` (input name -> full shape) for
    symbolic dims (``package.round_trip``)."""
    spec = get_target(target)
    model_path, folder = Path(model_path), Path(folder)
    if isinstance(inputs, (str, os.PathLike)) and not Path(inputs).is_file():
        raise UserError(f"{inputs}: inputs file not found", param="inputs")
    _check_destination(folder)
    ensure_writable_dir(folder)
    model = load_model(
        model_path
    )  # a model that cannot be read is named by its path, before any work
    if is_large(model):
        raise UserError(
            f"{model_path}: over 2 GiB of weights; the ORT format (a flatbuffer) holds at most 2 "
            "GiB"
        )
    from onnxdeploy.runtime import create_session

    create_session(str(model_path))
    with atomic_dir(
        folder
    ) as stage:  # built beside the destination, renamed into place when verified
        progress(f"copying {model_path} into the package")
        onnx_path = stage / f"{MODEL_NAME}.onnx"
        # a decoder as export writes it, its weights in model.onnx.data (onnx_io.staged_model)
        save_model(model, onnx_path, external=is_kv_decoder(model))
        progress(
            f"converting to ORT format for {spec.name} ({spec.platform}, {spec.style} "
            "optimizations)"
        )
        work = stage / ".convert"
        work.mkdir()
        ort_path, config = _convert(onnx_path, work, spec)
        ort_path = ort_path.rename(stage / ort_path.name)
        config = config.rename(stage / config.name)
        shutil.rmtree(work)
        progress("loading the ORT file back and comparing its outputs with the ONNX model's")
        comparison, note = round_trip(
            onnx_path,
            ort_path,
            model,
            spec,
            atol=atol,
            rtol=rtol,
            inputs=inputs,
            shapes=shapes,
            model_path=str(model_path),
        )
        if note:
            progress(f"round trip: {note}")
        _generation_files(model, model_path, stage, progress)
        files, operators = _describe_files(stage), _operators(config)
        manifest = build_manifest(
            model=model,
            model_path=str(model_path),
            target=spec,
            files=files,
            round_trip={
                **comparison.to_json(),
                "passed": bool(comparison),
                "inputs": note or "generated",
            },
            operators=operators,
            sizes={
                "onnx_with_external_data": file_bytes(onnx_path),
                "ort": ort_path.stat().st_size,
            },
        )
        result = PackageResult(str(folder), spec.name, files, operators, comparison, manifest)
        if not comparison:
            raise CheckFailed(
                f"{folder}: not written: the ORT-format model's outputs differ from the ONNX "
                f"model's (max abs {comparison.max_abs:.3e})\n{comparison}",
                result=result,
            )
        write_json(stage / "manifest.json", manifest)
    return result


def _generation_files(model, model_path: Path, stage: Path, progress) -> None:
    """A decoder with its cache also gets ``genai_config.json`` (onnxruntime-genai runs it) and
    the tokenizer files found beside the model."""
    from onnxdeploy.generate.genai import genai_config

    config = genai_config(model, filename=f"{MODEL_NAME}.onnx")
    if config is None:
        return
    progress("decoder with a KV cache: writing genai_config.json for onnxruntime-genai")
    write_json(stage / "genai_config.json", config)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (model_path.parent / name).is_file():
            shutil.copyfile(model_path.parent / name, stage / name)


__all__ = ["PackageResult", "package"]
