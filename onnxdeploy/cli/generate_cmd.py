"""``onnxdeploy generate``: tokens from a decoder-with-past ONNX graph in onnxruntime, streamed
(torch-free; a text prompt needs the folder's tokenizer and ``transformers``)."""

from __future__ import annotations

from pathlib import Path

import re

import click

from onnxdeploy.cli.output import emit_json, is_quiet, say


def _model_file(model: str) -> tuple[Path, Path | None]:
    """(the .onnx file, the folder a tokenizer may be in)."""
    from onnxdeploy.errors import UserError

    path = Path(model)
    if path.suffix == ".json" and path.is_file():
        return path, path.parent
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        preferred = [p for p in found if p.name in ("model.onnx", "decoder_model_merged.onnx")]
        if not found:
            raise UserError(f"{path}: no .onnx file in this folder")
        if len(found) > 1 and not preferred:
            raise UserError(
                f"{path}: several .onnx files ({', '.join(p.name for p in found[:4])}); give one"
            )
        return (preferred or found)[0], path
    if not path.is_file():
        raise UserError(f"{path}: no such file or folder")
    return path, path.parent


def _tokenizer(folder: Path | None, model: str):
    from onnxdeploy.errors import UserError

    if folder is None or not any(
        (folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json")
    ):
        raise UserError(
            f"{model}: --prompt needs a tokenizer beside the model (tokenizer.json); or give --prompt-ids"
        )
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise UserError(
            f"{model}: text prompts need 'transformers': pip install 'onnxdeploy[hf]'"
        ) from exc
    return AutoTokenizer.from_pretrained(str(folder))


def _ids(text: str) -> list[int]:
    from onnxdeploy.errors import UserError

    # commas or spaces between ids: "1 2 3" is three tokens, never 123
    parts = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    try:
        ids = [int(t) for t in parts]
    except ValueError as exc:
        raise UserError(
            f"--prompt-ids '{text}': expected comma-separated token ids such as 1,2,3"
        ) from exc
    if not ids:
        raise UserError(f"--prompt-ids '{text}': empty; give token ids such as 1,2,3")
    return ids


@click.command("generate")
@click.argument("model")
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    help="Text prompt (tokenized with the folder's tokenizer); repeat to batch.",
)
@click.option(
    "--prompt-ids", "prompt_ids", multiple=True, help="Token ids, e.g. 1,2,3; repeat to batch."
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0: greedy.")
@click.option("--top-k", type=int, default=0, show_default=True, help="0: no limit.")
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="onnxruntime threads (default: its own).")
@click.option("--json", "as_json", is_flag=True, help="Print tokens and timings as JSON.")
def generate_command(
    model, prompts, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, threads, as_json
):
    """Generate from MODEL (a decoder .onnx with a KV cache, its folder, or an encoder-decoder's
    .json from export), greedy by default."""
    from onnxdeploy.errors import UserError
    from onnxdeploy.generate import Sampling, open_generator

    if not prompts and not prompt_ids:
        raise UserError("give --prompt TEXT or --prompt-ids 1,2,3")
    if prompts and prompt_ids:
        raise UserError("give --prompt or --prompt-ids, not both")
    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    path, folder = _model_file(model)
    tokenizer = _tokenizer(folder, model) if prompts else None
    batch = (
        [tokenizer(p)["input_ids"] for p in prompts] if tokenizer else [_ids(p) for p in prompt_ids]
    )
    generator = open_generator(str(path), threads=threads)  # a decoder, or encoder + decoder
    generator.check_prompts(batch, max_new_tokens)
    stream = len(batch) == 1 and not as_json and not is_quiet()

    def show(_row: int, token: int) -> None:
        text = tokenizer.decode([token]) if tokenizer else f"{token} "
        click.echo(text, nl=False)

    extra = {"on_token": show} if stream else {}
    result = generator.generate(batch, max_new_tokens, sampling=sampling, **extra)
    if as_json:
        data = result.to_json()
        if tokenizer:
            data["text"] = [tokenizer.decode(list(t)) for t in result.tokens]
        emit_json(data)
        return
    if stream:
        click.echo()
        say(str(result).splitlines()[-1])
        return
    for tokens in result.tokens:
        say(tokenizer.decode(list(tokens)) if tokenizer else " ".join(map(str, tokens)))
    say(str(result).splitlines()[-1])
