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
from typing import Any

import numpy as np
import soundfile as sf

from server.audio.reference import SAMPLE_RATE
from server.engine.errors import SynthesisError
from server.engine.jobs import CloneVoice
from server.errors import APIError, conflict, invalid_request, not_found, user_string
from server.speech.catalog import unknown_voice
from server.speech.cloning import CloneService, clone_mode
from server.speech.library_lock import LibraryLock
from server.speech.synthesis import PresetVoices, ResolvedVoice
from server.speech.voice_files import (
    PRESET_NAMES,
    VOICE_NAME,
    DamagedVoice,
    SavedVoice,
    read_voice,
    scan_library,
    valid_voice_id,
)

log = logging.getLogger("qwen3-tts")


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _wav_bytes(audio: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


class VoiceLibrary:
    """Saved voices: metadata in memory (read at startup), prompts loaded on first use."""

    def __init__(self, root: Path, clones: CloneService, model_id: str) -> None:
        self.root = root
        self.clones = clones
        self.model_id = model_id
        # A missing directory is an empty library: it is created on first save, so a server
        # that never clones needs no writable VOICES_DIR.
        scan = scan_library(root)
        self._voices: dict[str, SavedVoice] = scan.voices
        self.problems = scan.problems  # what the scan at start skipped or flagged, for /health
        self._prompts: dict[str, Any] = {}
        self._lock = asyncio.Lock()  # serialises create/delete so names stay unique
        self._shared_lock = LibraryLock(root)  # ...and across processes sharing the directory
        # Files found damaged (at start or when another process wrote them), not read again.
        self._skipped: set[str] = {problem["file"] for problem in scan.problems if problem["action"] == "skipped"}

    def _read_new(self, path: Path) -> SavedVoice | None:
        """A metadata file another process wrote, checked as the scan at start checks it."""
        try:
            return read_voice(path)
        except DamagedVoice as exc:
            self.problems.append({"file": path.name, "problem": str(exc), "action": "skipped"})
            log.warning("skipping damaged saved voice", extra={"file": path.name, "reason": str(exc)})
            return None

    def _path(self, voice_id: str, suffix: str) -> Path:
        if not valid_voice_id(voice_id):  # never build a path from an unchecked id
            raise not_found(f"voice {user_string(voice_id)} not found", param="voice_id")
        return self.root / f"{voice_id}{suffix}"

    def voices(self) -> list[SavedVoice]:
        self.refresh()
        return sorted(self._voices.values(), key=lambda v: (v.created_at, v.created_ns, v.id))

    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.voices())

    def get(self, voice_id: str) -> SavedVoice:
        voice = self.find(voice_id) if valid_voice_id(voice_id) else None
        if voice is None:
            raise not_found(f"voice {user_string(voice_id)} not found", param="voice_id")
        return voice

    def find(self, name_or_id: str) -> SavedVoice | None:
        """A saved voice by id or by name (case-insensitive), saved by this process or by
        another one sharing the directory."""
        voice = self._find_known(name_or_id)
        if voice is not None and not self._path(voice.id, ".json").exists():
            self._forget(voice.id)  # deleted by another process
            voice = None
        if voice is None:
            self.refresh()
            voice = self._find_known(name_or_id)
        return voice

    def refresh(self) -> None:
        """Catch up with the directory: forget voices whose metadata has gone, read the
        metadata files not seen before (those other processes saved)."""
        on_disk = {path.stem: path for path in self.root.glob("voice_*.json")} if self.root.is_dir() else {}
        for voice_id in self._voices.keys() - on_disk.keys():
            self._forget(voice_id)
        for voice_id, path in on_disk.items():
            if voice_id in self._voices or path.name in self._skipped:
                continue
            voice = self._read_new(path)
            if voice is None:
                self._skipped.add(path.name)
            else:
                self._voices[voice.id] = voice

    def _forget(self, voice_id: str) -> None:
        self._voices.pop(voice_id, None)
        self._prompts.pop(voice_id, None)

    def _find_known(self, name_or_id: str) -> SavedVoice | None:
        key = name_or_id.strip()
        if valid_voice_id(key):
            return self._voices.get(key)
        lowered = key.lower()
        # The oldest voice of a name wins (two can share one only if the disk was edited).
        return next((v for v in self.voices() if v.name.lower() == lowered), None)

    def check_name(self, name: str) -> None:
        """400 for a name outside the safe set, 409 for one a preset or saved voice has."""
        if not VOICE_NAME.fullmatch(name):
            raise invalid_request(
                "name must be 1-64 characters (letters, digits, space, '_', '.', '-'), starting with a letter or digit",
                param="name",
            )
        if name.lower() in PRESET_NAMES:
            raise conflict(f"{user_string(name)} is the name of a preset voice", param="name")
        if self.find(name) is not None:
            raise conflict(f"a saved voice named {user_string(name)} already exists", param="name")

    async def create(self, name: str, audio: np.ndarray, ref_text: str | None, consent: str | None) -> SavedVoice:
        async with self._lock:
            self.check_name(name)  # again under the lock: another request may have taken it
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
            )
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                await asyncio.to_thread(_write_atomic, self._path(voice.id, ".wav"), _wav_bytes(audio))
                await self._save_prompt(voice.id, prompt)
                meta = json.dumps(asdict(voice), ensure_ascii=False).encode()
                async with self._shared_lock.held():
                    self.check_name(name)  # across processes: another one may have saved it meanwhile
                    await asyncio.to_thread(_write_atomic, self._path(voice.id, ".json"), meta)
            except BaseException:
                for suffix in (".json", ".prompt", ".wav"):  # no orphans from a failed save
                    self._path(voice.id, suffix).unlink(missing_ok=True)
                raise
            self._voices[voice.id] = voice
            self._prompts[voice.id] = prompt
        log.info("voice saved", extra={"voice_id": voice.id, "mode": voice.mode})
        return voice

    async def delete(self, voice_id: str) -> SavedVoice:
        self.get(voice_id)  # 404 without touching the directory
        async with self._lock, self._shared_lock.held():
            voice = self.get(voice_id)  # again: another process may have deleted it meanwhile
            # Metadata first: once it is gone the voice no longer exists, whatever else fails.
            for suffix in (".json", ".prompt", ".wav"):
                self._path(voice_id, suffix).unlink(missing_ok=True)
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
        if voice.model_id == self.model_id and path.exists():
            try:
                prompt = await self.clones.engine.run_with_model("base", lambda backend: backend.load_prompt(path))
            except SynthesisError as exc:
                log.warning("recomputing clone prompt", extra={"voice_id": voice.id, "error": str(exc)})
        if prompt is None:
            audio, _ = await asyncio.to_thread(sf.read, self._path(voice.id, ".wav"), dtype="float32")
            prompt = await self.clones.compute(audio, voice.ref_text)
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
    """Resolves presets first (so a preset name always means the preset), then saved voices
    by name or id; unknown names get the preset error listing saved voices too."""

    def __init__(self, library: VoiceLibrary) -> None:
        self.library = library
        self.presets = PresetVoices()

    async def resolve(self, name: str) -> ResolvedVoice:
        try:
            return await self.presets.resolve(name)
        except APIError:
            voice = self.library.find(name)
            if voice is None:
                raise unknown_voice(name, saved=self.library.names()) from None
        prompt = await self.library.prompt(voice)
        return ResolvedVoice(slot="base", label=f"saved:{voice.id}", clone=CloneVoice(prompt=prompt))
