"""Checkpoints in other forms, turned into what `--weights` reads: a Hugging Face folder of
config.json, *.safetensors and tokenizer.json (gguf.py: llama.cpp's GGUF files)."""
