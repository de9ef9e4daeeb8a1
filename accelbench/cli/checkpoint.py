"""`bench convert-gguf`: a GGUF file into the checkpoint folder `--weights` reads."""
from __future__ import annotations

from pathlib import Path

import click

from accelbench.cli.app import main


@main.command("convert-gguf")
@click.argument("gguf_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True,
              help="The dtype the dequantized tensors are written in.")
@click.option("--check-text", "check_texts", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help="Also require the tokenizer to round-trip this text exactly (repeatable).")
def convert_gguf(gguf_file: Path, out_dir: Path, dtype: str, check_texts: tuple[Path, ...]) -> None:
    """Convert a GGUF file (Llama architecture) into a checkpoint folder for --weights.

    Writes OUT_DIR/config.json, model.safetensors and tokenizer.json: tensors dequantized by the
    gguf package, llama.cpp's q/k row permutation undone, the byte-level BPE tokenizer rebuilt
    with the file's pre-tokenization rules and checked to round-trip texts exactly. config.json
    records the source file, its sha256 and its tensor types, so reports can say the weights are
    derived from quantized ones."""
    from accelbench.checkpoints.gguf import convert, quantized_source
    texts = [p.read_text(encoding="utf-8") for p in check_texts]
    done = convert(gguf_file, out_dir, dtype, texts)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(done.tensor_types.items()))
    click.echo(f"wrote {out_dir}: {done.parameters / 1e6:.1f} M parameters from {kinds} tensors "
               f"(sha256 {done.sha256[:16]}…); tokenizer round-trips {1 + len(texts)} text(s)")
    origin = quantized_source({"gguf_source": {"file": gguf_file.name, "tensor_types": done.tensor_types}})
    if origin:
        click.echo(f"note: the weights are {origin}; figures from them say so")
