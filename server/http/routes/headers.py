"""The response headers this server adds to speech responses beyond HTTP's own."""

# The seed the audio was generated with (the client's, or one drawn for it).
SEED_HEADER = "X-Seed"
# Set when the loaded model does not follow `instructions`, so a client knows they were not heard.
INSTRUCTIONS_IGNORED_HEADER = "X-Instructions-Ignored"
# How a whole response ended (stop, length, ...), as the log line's finish_reason.
FINISH_REASON_HEADER = "X-Finish-Reason"


def pcm_headers(sample_rate: int) -> dict[str, str]:
    """The raw stream's layout, under our names and the earlier server's (its clients read
    X-PCM-*)."""
    return {
        "X-Sample-Rate": str(sample_rate),
        "X-Sample-Width": "2",
        "X-Channels": "1",
        "X-PCM-Sample-Rate": str(sample_rate),
        "X-PCM-Bit-Depth": "16",
        "X-PCM-Channels": "1",
    }
