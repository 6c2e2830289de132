"""Write targets for codec libraries that let encoded bytes flow while encoding.

PyAV and soundfile both write through a Python file-like object. Handing them a
``BytesIO`` makes them treat the output as seekable, so they go back at the end
to patch headers -- impossible once those bytes were sent to the client. This
sink instead behaves like a pipe: append-only, drained after every chunk.
"""

from __future__ import annotations

import os


class StreamSink:
    """Append-only, non-seekable byte sink that is emptied with :meth:`drain`.

    * PyAV sees ``seekable() == False`` and therefore writes a streamable file
      (no MP3 Xing rewrite, FLAC STREAMINFO left "unknown length", ...).
    * soundfile's virtual I/O insists on ``seek``/``tell`` callbacks even for
      write-only formats; they report the running byte position and only allow
      "seeking" to where we already are. A real backwards seek means the library
      wanted to patch earlier bytes, which would silently corrupt the stream, so
      it is recorded and raised from the next :meth:`drain`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._bad_seek: tuple[int, int] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        n = len(data)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._pos + offset
        if target != self._pos:
            # Exceptions raised here may be swallowed by a C callback wrapper,
            # so remember the violation and surface it from drain().
            self._bad_seek = (offset, whence)
            raise OSError("StreamSink is not seekable")
        return self._pos

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def drain(self) -> bytes:
        """Return and forget everything written since the previous drain."""
        if self._bad_seek is not None:
            raise RuntimeError(f"encoder tried to seek back in a streamed output {self._bad_seek}")
        data = bytes(self._buf)
        self._buf.clear()
        return data
