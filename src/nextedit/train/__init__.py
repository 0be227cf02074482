"""Training students: config, rows from examples, SFT/LoRA and DPO with TRL, export, base models (GGUF)."""
