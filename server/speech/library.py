"""The saved voice library under VOICES_DIR, and the voice resolver that puts it next to
the presets.

Each voice is three files named by its server-generated id: `<id>.wav` (the decoded
reference at 24 kHz, kept so the prompt can be recomputed), `<id>.prompt` (the computed
clone prompt, written by the adapter) and `<id>.json` (its metadata, written last, so a
voice exists only once all of it is on disk). Every write goes to a temporary file and is
renamed into place, so a crash never leaves a half-written voice behind.

Several processes may serve one VOICES_DIR (the replicas of a cluster on a shared volume):
each reads the directory again when a voice is not in its memory or its metadata file has
gone, and the metadata is published under a lock on the directory (`LibraryLock`), so a
name stays unique across processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from server.audio.reference import SAMPLE_RATE
from server.engine.errors import SynthesisError
from server.engine.jobs import CloneVoice
from server.errors import APIError, conflict, invalid_request, not_found, user_string
from server.speech.catalog import VoiceCatalog
from server.speech.cloning import CloneService, clone_mode
from server.speech.described_voices import DESIGN_VOICE
from server.speech.library_lock import LibraryLock
from server.speech.voice_files import (
    PRESET_NAMES,
    VOICE_NAME,
    DamagedVoice,
    SavedVoice,
    is_regular,
    looks_like_id,
    metadata_files,
    read_recording,
    read_voice,
    scan_library,
    valid_voice_id,
)
from server.speech.voice_resolution import PresetVoices, ResolvedVoice

log = logging.getLogger("qwen3-tts")


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _wav_bytes(audio: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


class VoiceLibrary:
    """Saved voices: metadata in memory (read at startup), prompts loaded on first use."""

    def __init__(
        self, root: Path, clones: CloneService, model_id: str, reserved_names: frozenset[str] = frozenset()
    ) -> None:
        self.root = root
        # Lower-cased names that mean a speaker or a mapped name on this server (beyond the nine
        # and OpenAI's 13, which PRESET_NAMES holds): a saved voice may not take them.
        self.reserved_names = reserved_names
        self.clones = clones
        self.model_id = model_id
        self._voices: dict[str, SavedVoice] = {}
        self.problems: list[dict[str, str]] = []  # what was skipped or flagged, for /health
        self._prompts: dict[str, Any] = {}
        self._lock = asyncio.Lock()  # serialises create/delete so names stay unique
        self._shared_lock = LibraryLock(root)  # ...and across processes sharing the directory
        # Files found damaged (at start or when another process wrote them), not read again.
        self._skipped: set[str] = set()

    async def load(self) -> None:
        """Read the library at start, off the event loop (every file I/O of the library is:
        a slow or stuck file never stops the server answering). A missing directory is an
        empty library: it is created on first save, so a server that never clones needs no
        writable VOICES_DIR."""
        scan = await asyncio.to_thread(scan_library, self.root)
        self._voices = scan.voices
        self.problems = scan.problems
        self._skipped = {problem["file"] for problem in scan.problems if problem["action"] == "skipped"}

    def _read_new(self, known: set[str]) -> tuple[set[str], list[SavedVoice], list[tuple[str, str]]]:
        """In a thread: the ids on disk, and the metadata files not seen before (those other
        processes wrote), checked as the scan at start checks them."""
        on_disk = metadata_files(self.root)
        voices: list[SavedVoice] = []
        damaged: list[tuple[str, str]] = []
        for voice_id, path in on_disk.items():
            if voice_id in known or path.name in self._skipped:
                continue
            try:
                voices.append(read_voice(path))
            except DamagedVoice as exc:
                damaged.append((path.name, str(exc)))
        return set(on_disk), voices, damaged

    def _path(self, voice_id: str, suffix: str) -> Path:
        if not valid_voice_id(voice_id):  # never build a path from an unchecked id
            raise not_found(f"voice {user_string(voice_id)} not found", param="voice_id")
        return self.root / f"{voice_id}{suffix}"

    def known(self) -> list[SavedVoice]:
        """The voices in memory, oldest first, without reading the directory."""
        return sorted(self._voices.values(), key=lambda v: (v.created_at, v.created_ns, v.id))

    async def voices(self) -> list[SavedVoice]:
        await self.refresh()
        return self.known()

    async def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in await self.voices())

    async def get(self, voice_id: str) -> SavedVoice:
        voice = await self.find(voice_id) if valid_voice_id(voice_id) else None
        if voice is None:
            raise not_found(f"voice {user_string(voice_id)} not found", param="voice_id")
        return voice

    async def find(self, name_or_id: str) -> SavedVoice | None:
        """A saved voice by id or by name (case-insensitive), saved by this process or by
        another one sharing the directory."""
        voice = self._find_known(name_or_id)
        if voice is not None and not await asyncio.to_thread(self._path(voice.id, ".json").exists):
            self._forget(voice.id)  # deleted by another process
            voice = None
        if voice is None:
            await self.refresh()
            voice = self._find_known(name_or_id)
        return voice

    async def refresh(self) -> None:
        """Catch up with the directory: forget voices whose metadata has gone, read the
        metadata files not seen before (those other processes saved)."""
        on_disk, voices, damaged = await asyncio.to_thread(self._read_new, set(self._voices))
        for voice_id in self._voices.keys() - on_disk:
            self._forget(voice_id)
        for voice in voices:
            self._voices[voice.id] = voice
        for file, problem in damaged:
            if file in self._skipped:
                continue  # another refresh reported it meanwhile
            self._skipped.add(file)
            self.problems.append({"file": file, "problem": problem, "action": "skipped"})
            log.warning("skipping damaged saved voice", extra={"file": file, "reason": problem})

    def _forget(self, voice_id: str) -> None:
        self._voices.pop(voice_id, None)
        self._prompts.pop(voice_id, None)

    def _find_known(self, name_or_id: str) -> SavedVoice | None:
        key = name_or_id.strip()
        if valid_voice_id(key):
            return self._voices.get(key)
        lowered = key.lower()
        # The oldest voice of a name wins (two can share one only if the disk was edited).
        return next((v for v in self.known() if v.name.lower() == lowered), None)

    async def check_name(self, name: str) -> None:
        """400 for a name outside the safe set, 409 for one a preset or saved voice has."""
        if not VOICE_NAME.fullmatch(name):
            raise invalid_request(
                "name must be 1-64 characters (letters, digits, space, '_', '.', '-'), starting with a letter or digit",
                param="name",
            )
        if looks_like_id(name):
            raise invalid_request(
                f"{user_string(name)} looks like a voice id (voice_ and hex digits): a voice is looked up by id "
                "before its name, so it could not be used by name; choose another name",
                param="name",
            )
        if name.lower() in PRESET_NAMES or name.lower() in self.reserved_names:
            raise conflict(f"{user_string(name)} is the name of a preset voice", param="name")
        if name.lower() == DESIGN_VOICE:  # the design model's `voice`: the described voice
            raise conflict(f"{user_string(name)} names the described voice of the design model", param="name")
        if await self.find(name) is not None:
            raise conflict(f"a saved voice named {user_string(name)} already exists", param="name")

    async def create(
        self,
        name: str,
        audio: np.ndarray,
        ref_text: str | None,
        consent: str | None,
        *,
        voice_type: Literal["audio_sample", "prompt"] = "audio_sample",
        description: str | None = None,
        language: str | None = None,
    ) -> SavedVoice:
        async with self._lock:
            await self.check_name(name)  # again under the lock: another request may have taken it
            prompt = await self.clones.compute(audio, ref_text)
            voice = SavedVoice(
                id=f"voice_{secrets.token_hex(12)}",
                name=name,
                created_at=int(time.time()),
                created_ns=time.time_ns(),
                mode=clone_mode(ref_text),
                ref_text=ref_text,
                consent=consent,
                model_id=self.model_id,
                type=voice_type,
                description=description,
                language=language,
            )
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
            try:
                await asyncio.to_thread(_write_atomic, self._path(voice.id, ".wav"), _wav_bytes(audio))
                await self._save_prompt(voice.id, prompt)
                meta = json.dumps(asdict(voice), ensure_ascii=False).encode()
                async with self._shared_lock.held():
                    await self.check_name(name)  # across processes: another one may have saved it meanwhile
                    await asyncio.to_thread(_write_atomic, self._path(voice.id, ".json"), meta)
            except BaseException:
                for suffix in (".json", ".prompt", ".wav"):  # no orphans from a failed save
                    self._path(voice.id, suffix).unlink(missing_ok=True)
                raise
            self._voices[voice.id] = voice
            self._prompts[voice.id] = prompt
        log.info("voice saved", extra={"voice_id": voice.id, "mode": voice.mode, "type": voice.type})
        return voice

    async def delete(self, voice_id: str) -> SavedVoice:
        await self.get(voice_id)  # 404 before taking the locks
        async with self._lock, self._shared_lock.held():
            voice = await self.get(voice_id)  # again: another process may have deleted it meanwhile
            # Metadata first: once it is gone the voice no longer exists, whatever else fails.
            paths = [self._path(voice_id, suffix) for suffix in (".json", ".prompt", ".wav")]
            await asyncio.to_thread(_remove, paths)
            self._forget(voice_id)
        log.info("voice deleted", extra={"voice_id": voice_id})
        return voice

    async def prompt(self, voice: SavedVoice) -> Any:
        """The voice's prompt: in memory, else from its file, else recomputed from its
        reference (when the file is missing or unreadable, or was made by another model).
        A voice whose files are damaged is a 500 naming it, not an internal error; a full
        queue or a timeout keeps its own status."""
        try:
            return await self._prompt(voice)
        except (OSError, RuntimeError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
            raise voice_unavailable(voice, "its reference recording is missing or unreadable", exc) from exc
        except SynthesisError as exc:
            raise voice_unavailable(voice, "its clone prompt could not be made from its files", exc) from exc

    async def _prompt(self, voice: SavedVoice) -> Any:
        cached = self._prompts.get(voice.id)
        if cached is not None:
            return cached
        path = self._path(voice.id, ".prompt")
        prompt: Any = None
        # A prompt file that is not a regular file (a FIFO would stall the inference thread
        # that loads it) counts as missing: the prompt is made again from the recording.
        if voice.model_id == self.model_id and await asyncio.to_thread(is_regular, path):
            try:
                prompt = await self.clones.engine.run_with_model("base", lambda backend: backend.load_prompt(path))
            except SynthesisError as exc:
                log.warning("recomputing clone prompt", extra={"voice_id": voice.id, "error": str(exc)})
        if prompt is None:
            recording = await asyncio.to_thread(read_recording, self._path(voice.id, ".wav"))
            prompt = await self.clones.compute(
                recording[:, 0] if recording.shape[1] == 1 else recording, voice.ref_text
            )
            await self._save_prompt(voice.id, prompt)
        self._prompts[voice.id] = prompt
        return prompt

    async def _save_prompt(self, voice_id: str, prompt: Any) -> None:
        path = self._path(voice_id, ".prompt")
        await self.clones.engine.run_with_model("base", lambda backend: backend.save_prompt(prompt, path))


def voice_unavailable(voice: SavedVoice, reason: str, exc: BaseException) -> APIError:
    log.warning("saved voice unusable", extra={"voice_id": voice.id, "reason": reason, "error": str(exc)})
    return APIError(
        500,
        f"saved voice {voice.name!r} ({voice.id}) cannot be used: {reason}; delete it and save it again",
        "server_error",
        "voice",
        "voice_unavailable",
    )


class LibraryVoices:
    """Resolves presets first (so a preset name always means the preset), then names mapped
    to saved voices (VOICE_MAP), then saved voices by name or id; unknown names get the
    preset error listing saved voices too."""

    def __init__(self, library: VoiceLibrary, catalog: VoiceCatalog | None = None) -> None:
        self.library = library
        self.presets = PresetVoices(catalog)
        self.catalog = self.presets.catalog

    async def resolve(self, name: str) -> ResolvedVoice:
        try:
            return await self.presets.resolve(name)
        except APIError:
            alias = self.catalog.alias(name)
            if alias is not None and alias.saved is not None:
                voice = await self.library.find(alias.saved)
                if voice is None:
                    raise self.catalog.missing_saved(alias) from None
            else:
                voice = await self.library.find(name)
            if voice is None:
                raise self.catalog.unknown_voice(name, saved=await self.library.names()) from None
        prompt = await self.library.prompt(voice)
        return ResolvedVoice(slot="base", label=f"saved:{voice.id}", clone=CloneVoice(prompt=prompt))
