"""vLLM-Omni's speech fields mapped onto this server's voices, or refused by name.

`task_type` says which Qwen3-TTS task speaks: CustomVoice is the preset speakers, Base is
cloning (a saved voice, or `ref_audio` given inline), VoiceDesign a voice described in
words by `instructions` (the design slot, server/speech/described_voices.py). An inline
`ref_audio` is audio itself, as a data URL or bare base64; a URL or a file path is never
fetched or read: user strings never reach the model package or the filesystem as locations.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

from server.engine.jobs import CloneVoice
from server.errors import invalid_request, user_string
from server.logs import request_id_var
from server.speech.cloning import CloneService, PromptCache, clone_mode
from server.speech.described_voices import task_design_voice
from server.speech.requests import INLINE_VOICE, OmniFields, VoiceFields
from server.speech.voice_resolution import ResolvedVoice, VoiceResolver

log = logging.getLogger("qwen3-tts")

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I)
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")


def reference_bytes(value: str, max_bytes: int) -> bytes:
    """The audio of an inline `ref_audio`: a data URL (`data:audio/wav;base64,...`) or bare
    base64. A URL or a path is refused, saying why; nothing is fetched or opened."""
    text = value.strip()
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://", "ftp://", "file:")):
        raise invalid_request(
            "ref_audio URLs are never fetched by this server: send the recording inline as a "
            "data URL (data:audio/wav;base64,...) or save it as a voice (POST /v1/audio/voices)",
            param="ref_audio",
        )
    match = _DATA_URL.match(text)
    if match is not None:
        if not match["b64"]:
            raise invalid_request("a ref_audio data URL must be base64-encoded (;base64,)", param="ref_audio")
        payload = text[match.end() :]
    elif _looks_like_base64(text):
        payload = text
    else:
        raise invalid_request(
            "ref_audio must be a data URL (data:audio/wav;base64,...) or base64 audio; "
            "file paths are never read by this server",
            param="ref_audio",
        )
    # Bounded before decoding: base64 holds 3 bytes in every 4 characters.
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise invalid_request(f"ref_audio is larger than {max_bytes} bytes (MAX_UPLOAD_BYTES)", param="ref_audio")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_request(f"ref_audio is not valid base64: {exc}", param="ref_audio") from exc
    if not data:
        raise invalid_request("ref_audio holds no audio", param="ref_audio")
    return data


def _looks_like_base64(text: str) -> bool:
    """Bare base64 audio: the alphabet, whole 4-character groups, longer than any path a
    client would mean ("/etc/passwd" has the alphabet too; an mp3's base64 starts with "//")."""
    compact = "".join(text.split())
    return len(compact) >= 64 and len(compact) % 4 == 0 and _BASE64.match(compact) is not None


class OmniVoices:
    """Resolves the voice of a request that may carry vLLM-Omni's fields."""

    def __init__(
        self,
        voices: VoiceResolver,
        clones: CloneService,
        max_reference_bytes: int,
        design_names: tuple[str, ...] = (),
    ) -> None:
        self.voices = voices
        self.design_names = design_names  # empty when the VoiceDesign slot is off
        self.clones = clones
        self.max_reference_bytes = max_reference_bytes

    async def for_request(self, request: VoiceFields) -> ResolvedVoice:
        if not isinstance(request, OmniFields) or not request.uses_omni_voice():
            if isinstance(request, OmniFields):
                _no_reference_fields(request)
            return await self.voices.resolve(request.voice_name)
        return await self.resolve(request, request.voice_name)

    async def resolve(self, fields: OmniFields, voice_name: str | None) -> ResolvedVoice:
        """The voice that `fields` (and the request's `voice`, if any) select; 400 naming the
        field when they do not fit together."""
        task = fields.task_type
        if task == "VoiceDesign":
            return task_design_voice(fields, self.design_names)
        if fields.ref_audio is not None:
            if task == "CustomVoice":
                raise invalid_request(
                    "ref_audio clones a voice: it goes with task_type Base, not CustomVoice", param="ref_audio"
                )
            return await self._inline(fields)
        _no_reference_fields(fields)
        if voice_name is None or voice_name == INLINE_VOICE:
            raise invalid_request("voice is required: a preset or saved voice name, or ref_audio", param="voice")
        voice = await self.voices.resolve(voice_name)
        if task == "CustomVoice" and voice.slot != "custom_voice":
            raise invalid_request(
                f"task_type CustomVoice speaks the preset voices; {user_string(voice_name)} is a saved voice "
                "(task_type Base)",
                param="voice",
            )
        if task == "Base" and voice.slot != "base":
            raise invalid_request(
                f"task_type Base speaks saved voices or ref_audio; {user_string(voice_name)} is a preset voice "
                "(task_type CustomVoice)",
                param="voice",
            )
        return voice

    async def _inline(self, fields: OmniFields) -> ResolvedVoice:
        assert fields.ref_audio is not None
        audio = await self.clones.decode(reference_bytes(fields.ref_audio, self.max_reference_bytes), "ref_audio")
        # x_vector_only_mode: the speaker embedding alone, the transcript unused (as in
        # vLLM-Omni); without a transcript that is the only mode there is.
        ref_text = None if fields.x_vector_only_mode else fields.ref_text
        if fields.x_vector_only_mode is False and not ref_text:
            raise invalid_request(
                "x_vector_only_mode false clones in context and needs ref_text, the reference's transcript",
                param="ref_text",
            )
        prompt = await self.clones.prompt_for(audio, ref_text)
        mode = clone_mode(ref_text)
        log.info(
            "clone prompt",
            extra={
                "request_id": request_id_var.get(),
                "mode": prompt.mode,
                "cache": "hit" if prompt.cache_hit else "miss",
                "prompt_ms": round(prompt.prompt_ms, 1),
                "reference_seconds": round(audio.shape[0] / 24_000, 3),
            },
        )
        # Labelled by the reference itself, so the output cache tells two references apart.
        label = f"ref_audio:{mode}:{PromptCache.key(audio, ref_text, mode)[:16]}"
        return ResolvedVoice(slot="base", label=label, clone=CloneVoice(prompt=prompt.prompt))


def _no_reference_fields(fields: OmniFields) -> None:
    if fields.ref_text is not None:
        raise invalid_request("ref_text is the transcript of ref_audio: send it with ref_audio", param="ref_text")
    if fields.x_vector_only_mode is not None:
        raise invalid_request(
            "x_vector_only_mode applies to ref_audio: send it with ref_audio", param="x_vector_only_mode"
        )
