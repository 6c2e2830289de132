"""Model slots and what fills them: loading a Qwen3-TTS checkpoint through the package,
quantization, and the forced aligner for word timestamps."""
