"""int4 quality side by side on a model trained on real text (issue 30, item 4): onnxruntime-genai's
model builder int4 against onnxdeploy's int4 search, both judged against the same fp32 model.

A byte-level Llama (256 tokens, hidden 128, 4 layers, heads of 32) is trained here for a few hundred
steps on the documentation CPython ships (``pydoc_data.topics``), its last tenth held out. Each int4
model is then scored teacher-forced on held-out sequences: next-token top-1 agreement with fp32,
mean KL(fp32 || int4) per token and perplexity, beside fp32's perplexity. genai's builder is run as
its docs show (``-p int4 -e cpu``: blocks of 32, its CPU accuracy level); ours is
``quantize_decoder`` over its int4 candidates with the chosen one reported and every candidate's
numbers printed. Goal: ours' agreement at least genai's, perplexity no worse.

    python benchmarks/int4_quality.py [--steps 400] [--sequences 24]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# this folder's transformers.py must not shadow the package (python puts the script's folder first)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

LENGTH = 96  # tokens per held-out sequence


def _train(folder: Path, steps: int):
    import torch
    import transformers
    from pydoc_data.topics import topics
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    text = np.frombuffer("".join(topics[k] for k in sorted(topics)).encode(), np.uint8)
    split = int(len(text) * 0.9)
    train, held_out = torch.from_numpy(text[:split].astype(np.int64)), text[split:]
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = transformers.LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        starts = torch.randint(0, len(train) - 97, (16,))
        batch = torch.stack([train[s : s + 96] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 100 == 0:
            print(f"  step {step}: loss {loss.item():.3f}", flush=True)
    model.eval().save_pretrained(folder)
    # genai's builder wants a tokenizer: a word-level one over the 256 byte ids
    tokenizer = Tokenizer(models.WordLevel({f"b{i}": i for i in range(256)}, unk_token="b0"))
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="b0", bos_token="b1", eos_token="b2", pad_token="b0"
    ).save_pretrained(folder)
    return model, held_out


def _logits(session, sequence: np.ndarray, kv_heads: int, head_dim: int) -> np.ndarray:
    """[length, vocab] logits of one sequence run whole on an empty past, for any decoder graph
    with ``past_key_values.N.key/value`` inputs (ours and genai's alike)."""
    ids = sequence[None].astype(np.int64)
    feeds = {}
    for i in session.get_inputs():
        if i.name == "input_ids":
            feeds[i.name] = ids
        elif i.name == "attention_mask":
            feeds[i.name] = np.ones_like(ids)
        elif i.name == "position_ids":
            feeds[i.name] = np.arange(ids.shape[1], dtype=np.int64)[None]
        else:
            feeds[i.name] = np.zeros((1, kv_heads, 0, head_dim), np.float32)
    return session.run(["logits"], feeds)[0][0].astype(np.float64)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _scores(reference: list, candidate: list, sequences: np.ndarray) -> tuple[float, float, float]:
    """(agreement %, mean KL nats, perplexity) of ``candidate``'s log-probabilities against
    ``reference``'s over ``sequences``."""
    agree, kl, nll = [], [], []
    for ref, got, seq in zip(reference, candidate, sequences):
        agree.append(ref.argmax(-1) == got.argmax(-1))
        kl.append((np.exp(ref) * (ref - got)).sum(-1))
        nll.append(-got[np.arange(len(seq) - 1), seq[1:]])
    return (
        100.0 * float(np.mean(np.concatenate(agree))),
        float(np.mean(np.concatenate(kl))),
        float(np.exp(np.mean(np.concatenate(nll)))),
    )


def _size(path: Path) -> float:
    files = [path, *path.parent.glob(path.name + ".data")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--sequences", type=int, default=24)
    args = parser.parse_args()
    import onnxruntime as ort

    from onnxdeploy.exporter.decoder import export_decoder
    from onnxdeploy.quantize.generative import DEFAULT_CANDIDATES, quantize_decoder

    work = Path(tempfile.mkdtemp(prefix="bench-int4-quality-"))
    try:
        print(f"training a byte-level Llama for {args.steps} steps on pydoc_data.topics")
        model, held_out = _train(work / "hf", args.steps)
        rng = np.random.default_rng(1)
        starts = rng.integers(0, len(held_out) - LENGTH, args.sequences)
        sequences = np.stack([held_out[s : s + LENGTH].astype(np.int64) for s in starts])
        fp32 = export_decoder(model, "text", work / "ours" / "model.onnx").output
        ours = quantize_decoder(
            fp32,
            str(work / "ours" / "model.int4.onnx"),
            sequences=sequences,
            candidates=tuple(c for c in DEFAULT_CANDIDATES if c.weights == "int4"),
            force=True,  # written whatever this machine's timing says: quality is the question
            new_tokens=8,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxruntime_genai.models.builder",
                "-i",
                str(work / "hf"),
                "-o",
                str(work / "genai4"),
                "-p",
                "int4",
                "-e",
                "cpu",
            ],
            check=True,
            capture_output=True,
        )
        heads = (model.config.num_key_value_heads, model.config.hidden_size // 4)
        paths = {
            "onnxdeploy fp32 (reference)": Path(fp32),
            f"onnxdeploy int4 (chosen: {ours.chosen})": work / "ours" / "model.int4.onnx",
            "onnxruntime-genai builder int4": work / "genai4" / "model.onnx",
        }
        log_probs = {}
        for name, path in paths.items():
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            log_probs[name] = [_log_softmax(_logits(session, s, *heads)) for s in sequences]
        reference = log_probs["onnxdeploy fp32 (reference)"]
        print(
            f"\n{len(sequences)} held-out sequences of {LENGTH} bytes, teacher-forced, "
            "against onnxdeploy fp32"
        )
        print(f"{'system':46} {'agreement %':>11} {'KL nats':>9} {'perplexity':>10} {'size MB':>8}")
        rows = {}
        for name, path in paths.items():
            rows[name] = _scores(reference, log_probs[name], sequences)
            agreement, kl, ppl = rows[name]
            print(f"{name:46} {agreement:11.2f} {kl:9.4f} {ppl:10.3f} {_size(path):8.2f}")
        print("\nonnxdeploy's int4 candidates (its own scoring, on the same sequences):")
        for attempt in ours.attempts:
            if attempt.decoder is None:  # it could not be built or run here
                print(f"  {attempt.config.name:28} {attempt.error}")
                continue
            print(
                f"  {attempt.config.name:28} agreement {attempt.score:6.2f}%  "
                f"KL {attempt.decoder.kl:.4f}  perplexity {attempt.decoder.perplexity:.3f}"
            )
        ours_row = rows[f"onnxdeploy int4 (chosen: {ours.chosen})"]
        genai_row = rows["onnxruntime-genai builder int4"]
        print(
            f"\nours / genai int4: agreement {ours_row[0]:.2f}% vs {genai_row[0]:.2f}% "
            f"({ours_row[0] - genai_row[0]:+.2f} points; goal >= 0), perplexity "
            f"{ours_row[2] / genai_row[2]:.3f}x (goal <= 1.0x), KL {ours_row[1] / genai_row[1]:.2f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
