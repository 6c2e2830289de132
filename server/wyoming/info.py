"""The answer to `describe`: one TTS program listing every voice the server speaks."""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from server.speech.catalog import QWEN_SPEAKERS, VoiceCatalog
from server.speech.library import VoiceLibrary

PROGRAM_NAME = "qwen3-tts"
# Every voice speaks the model's ten languages, advertised as the ISO 639-1 codes Home
# Assistant matches its own language settings against.
LANGUAGE_CODES: tuple[str, ...] = ("en", "zh", "ja", "ko", "de", "fr", "ru", "pt", "es", "it")
QWEN = Attribution(name="Qwen", url="https://huggingface.co/Qwen")
# A request without a voice gets the first one listed, as Wyoming servers do.
DEFAULT_VOICE = QWEN_SPEAKERS[0]


def _voice(name: str, description: str, attribution: Attribution = QWEN) -> TtsVoice:
    return TtsVoice(
        name=name,
        attribution=attribution,
        installed=True,
        description=description,
        version=None,
        languages=list(LANGUAGE_CODES),
    )


async def describe(library: VoiceLibrary | None, version: str, catalog: VoiceCatalog | None = None) -> Info:
    """Presets (the checkpoint's speakers, then the names mapped onto speakers), then saved
    voices when `library` is given (None when saved voices are not offered on this port)."""
    catalog = catalog or VoiceCatalog()
    voices = [_voice(name, f"Qwen3-TTS speaker {name}") for name in catalog.speakers]
    voices += [
        _voice(alias.name, f"mapped name, spoken by {alias.speaker}")
        for alias in catalog.aliases.values()
        if alias.speaker is not None
    ]
    if library is not None:
        mine = Attribution(name="saved voice", url="")
        voices += [_voice(voice.name, f"saved voice ({voice.mode})", mine) for voice in await library.voices()]
    program = TtsProgram(
        name=PROGRAM_NAME,
        attribution=QWEN,
        installed=True,
        description="Qwen3-TTS text to speech",
        version=version,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])
