"""The 12 Hz codec's streaming decoder: per-stream state (the transformer's sliding window,
each causal convolution's left context) so audio streams a few frames at a time and equals
decoding the whole code sequence at once."""
