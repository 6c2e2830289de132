"""Sends speech plans' audio down a WebSocket: resampled, encoded, one binary frame per
chunk the engine hands over, each plan logged once like an HTTP request."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.audio.encoders import AudioEncoder, create_encoder
from server.audio.formats import FormatSpec
from server.audio.resample import StreamResampler
from server.engine.jobs import FinishReason
from server.logs import request_id_var
from server.speech.ending import ClientGone, outcome_of
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.sending import ClientStalled, send_deadline
from server.speech.synthesis import SpeechService
from server.speech.timestamps import WordTimer
from server.websocket.protocol import error_event

# Audio is sent in binary frames of at most this size: common clients refuse messages over
# 1 MiB by default, and a long sentence of raw PCM is more than that.
MAX_FRAME_BYTES = 64 * 1024


class AudioOut:
    """One continuous audio stream in the client's format and rate: an utterance, or all the
    sentences of a text stream (so an encoded format is one file, not one per sentence)."""

    def __init__(self, fmt: FormatSpec, sample_rate: int) -> None:
        self.fmt = fmt
        self._resampler = StreamResampler(sample_rate)
        self._encoder: AudioEncoder = create_encoder(fmt.name, streaming=True, sample_rate=sample_rate)

    def _encode(self, pcm: np.ndarray) -> bytes:
        return self._encoder.encode(self._resampler.process(pcm))

    def _finish(self) -> bytes:
        tail = self._resampler.finish()
        return (self._encoder.encode(tail) if tail.size else b"") + self._encoder.finish()

    async def encode(self, pcm: np.ndarray) -> bytes:
        # Raw PCM costs microseconds; codecs and resampling go off the event loop.
        if self.fmt.name == "pcm" and self._resampler.rate == 24_000:
            return self._encode(pcm)
        return await asyncio.to_thread(self._encode, pcm)

    async def finish(self) -> bytes:
        return await asyncio.to_thread(self._finish)


class Speaker:
    """Streams plans to one connection."""

    def __init__(self, websocket: WebSocket, service: SpeechService) -> None:
        self.websocket = websocket
        self.service = service
        # Words are sent by a task of their own (server/websocket/words.py): one send at a time.
        self._sending = asyncio.Lock()

    async def send_event(self, event: dict[str, object]) -> None:
        try:
            async with self._sending:
                await self.websocket.send_json(event)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise ClientGone() from exc

    async def send_audio(self, data: bytes) -> None:
        try:
            async with self._sending:
                for offset in range(0, len(data), MAX_FRAME_BYTES):
                    await self.websocket.send_bytes(data[offset : offset + MAX_FRAME_BYTES])
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise ClientGone() from exc

    async def speak(
        self, plan: SpeechPlan, out: AudioOut, request_id: str, timer: WordTimer | None = None
    ) -> FinishReason | None:
        """Send the plan's audio and return how it ended; None (after an error event) when
        synthesis failed. Raises ClientGone or CancelledError when the client left,
        ClientStalled when it stopped reading (past SEND_TIMEOUT or the request's deadline),
        after stopping the engine job. With a timer, each segment is aligned once complete,
        and released to the words sender once its audio has been sent."""
        token = request_id_var.set(request_id)
        stats = SpeechStats()
        status, error = 200, None
        segments = self.service.chunks(plan, stats, timer.segment_done if timer is not None else None)
        # REQUEST_TIMEOUT covers sending, as on HTTP: the send guard holds every send of
        # this request to it.
        deadline = asyncio.get_running_loop().time() + self.service.engine.limits.request_timeout
        try:
            with send_deadline(deadline):
                async for pcm in segments:
                    started = time.perf_counter()
                    data = await out.encode(pcm)
                    stats.encode_ms += (time.perf_counter() - started) * 1000
                    stats.mark_sent(int(pcm.shape[0]))
                    await self.send_audio(data)
                    if timer is not None:
                        timer.release()
            return stats.finish_reason
        except (Exception, asyncio.CancelledError, ClientStalled) as exc:
            outcome = outcome_of(exc)
            status, error = outcome.status, outcome.error
            if outcome.api_error is None:
                raise  # the client left or stopped reading
            await self.send_event(error_event(outcome.api_error))
            return None
        finally:
            if timer is not None:
                timer.release()  # whatever audio there was has been sent
            await segments.aclose()  # stops the engine job when the client left mid-utterance
            self.service.log_request(plan, stats, status, error)
            request_id_var.reset(token)
