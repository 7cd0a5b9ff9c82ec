"""The encoder-decoder manifest (``<stem>.json``, written by ``export`` of T5, BART, Whisper), read
back and checked against its schema and against the two graphs it names, so a hand-edited or
mixed-up manifest is one line naming the field instead of an error deep inside a generation step.
The fields are few and flat; a schema library would add a dependency for a dozen checks."""

from __future__ import annotations

from pathlib import Path

from onnxdeploy.errors import UserError
from onnxdeploy.files import read_json_object

SCHEMA = "onnxdeploy.seq2seq/1"
MAIN_INPUTS = ("input_ids", "input_features")


def _count(info: dict, key: str, origin: str, *, least: int = 1) -> int:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"{origin}: '{key}' is {value!r}; it must be an integer >= {least}")
    return value


def _token(info: dict, key: str, origin: str, vocab: int, *, optional: bool) -> None:
    value = info.get(key)
    values = value if isinstance(value, list) else [value]
    if value is None and optional:
        return
    for token in values:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab:
            raise UserError(
                f"{origin}: '{key}' is {value!r}; token ids are integers in 0..{vocab - 1}"
            )


def read_manifest(path: str | Path) -> dict:
    """The manifest's fields, each checked (types, ranges, the graphs beside it); UserError naming
    the file and the field otherwise."""
    origin = str(path)
    info = read_json_object(path)
    if info.get("schema") != SCHEMA:
        raise UserError(f"{origin}: not an encoder-decoder manifest written by onnxdeploy export")
    folder = Path(path).parent
    for key in ("encoder", "decoder"):
        name = info.get(key)
        if not isinstance(name, str) or Path(name).name != name or not name:
            raise UserError(
                f"{origin}: '{key}' is {name!r}; it must name a graph file beside the manifest"
            )
        if not (folder / name).is_file():  # repr: a name may hold a newline or a tab
            raise UserError(f"{origin}: its {key} graph {name!r} is missing beside it")
    if info["encoder"] == info["decoder"]:
        raise UserError(f"{origin}: 'encoder' and 'decoder' name the same file")
    if info.get("main_input") not in MAIN_INPUTS:
        raise UserError(
            f"{origin}: 'main_input' is {info.get('main_input')!r}; one of {', '.join(MAIN_INPUTS)}"
        )
    for key in ("layers", "heads", "head_dim"):
        _count(info, key, origin)
    vocab = _count(info, "vocab_size", origin, least=2)
    _token(info, "decoder_start_token_id", origin, vocab, optional=False)
    for key in ("pad_token_id", "eos_token_id", "forced_bos_token_id", "forced_eos_token_id"):
        _token(info, key, origin, vocab, optional=True)
    return info


def check_graphs(info: dict, origin: str, encoder, decoder) -> None:
    """The sessions agree with the manifest: the encoder takes its main input, the decoder its
    cache of ``layers`` layers of ``heads`` x ``head_dim`` (graphs swapped or edited counts fail
    here, before a token is generated)."""
    takes = {i.name for i in encoder.get_inputs()}
    if info["main_input"] not in takes or any(n.startswith("past_key_values.") for n in takes):
        raise UserError(
            f"{origin}: its 'encoder' graph {info['encoder']} takes "
            f"{', '.join(sorted(takes)[:3])}{'...' if len(takes) > 3 else ''}, not an encoder's "
            f"{info['main_input']} (are 'encoder' and 'decoder' swapped?)"
        )
    cache = {i.name: i.shape for i in decoder.get_inputs() if i.name.startswith("past_key_values.")}
    layers = {int(name.split(".")[1]) for name in cache}
    if layers != set(range(info["layers"])):
        raise UserError(
            f"{origin}: 'layers' is {info['layers']}, its decoder graph {info['decoder']} has a "
            f"cache for {len(layers)}"
        )
    shape = cache.get("past_key_values.0.decoder.key") or []
    for axis, key in ((1, "heads"), (3, "head_dim")):
        if len(shape) > axis and isinstance(shape[axis], int) and shape[axis] != info[key]:
            raise UserError(
                f"{origin}: '{key}' is {info[key]}, its decoder graph {info['decoder']} has "
                f"{shape[axis]}"
            )


__all__ = ["MAIN_INPUTS", "SCHEMA", "check_graphs", "read_manifest"]
