"""What may be uploaded (a path, bytes or a binary file object), opened again for every try of a request.

A ``Source`` knows its size before anything is sent, so the client can pick the upload flow and refuse a file
over a known limit up front. A file object is read from where it stands; one that cannot seek is read into
memory once, so a retry can send it again.
"""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

from mimicmotion_client.errors import INVALID_INPUT, MimicMotionError

FileInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
CHUNK_BYTES = 1024 * 1024

# Magic numbers of the formats the gateway accepts, for bytes and files without a telling name.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF8", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (0, b"BM", "image/bmp"),
    (4, b"ftypqt", "video/quicktime"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (8, b"AVI ", "video/x-msvideo"),
)


@dataclass(frozen=True)
class Source:
    """Bytes to upload: ``filename``, ``size_bytes`` and ``content_type`` (from the name, else sniffed)."""

    filename: str
    size_bytes: int
    content_type: str
    _path: Path | None = None
    _data: bytes | None = None
    _file: IO[bytes] | None = None
    _start: int = 0

    @contextmanager
    def opened(self) -> Iterator[IO[bytes]]:
        """The content from its start, for one try; closes only what it opened (never the caller's file)."""
        if self._path is not None:
            with self._path.open("rb") as file:
                yield file
        elif self._file is not None:
            self._file.seek(self._start)
            yield self._file
        else:
            yield io.BytesIO(self._data or b"")

    def chunks(self, file: IO[bytes]) -> Iterator[bytes]:
        """``size_bytes`` from ``file`` in chunks (a file object may hold more after the part we measured)."""
        left = self.size_bytes
        while left > 0:
            chunk = file.read(min(CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def source_of(value: Any, *, name: str, filename: str | None = None, content_type: str | None = None) -> Source:
    """A Source for ``value`` (a path, bytes or a readable binary file); ``name`` is the argument, for errors.

    Raises:
        MimicMotionError: (code ``invalid_input``) a path that is not a file, or a value of another type.
    """
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise MimicMotionError(f"{name}: {str(path)!r} is not a file", code=INVALID_INPUT)
        head = _head(path)
        return Source(filename or path.name, path.stat().st_size, content_type or _guess(path.name, head), _path=path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        kind = content_type or _guess(filename or "", data[:16])
        return Source(filename or _default_name(name, kind), len(data), kind, _data=data)
    if hasattr(value, "read"):
        return _file_source(value, name=name, filename=filename, content_type=content_type)
    raise MimicMotionError(
        f"{name} must be a URL, a path, bytes or a binary file object, not {type(value).__name__}", code=INVALID_INPUT
    )


def _file_source(file: Any, *, name: str, filename: str | None, content_type: str | None) -> Source:
    given = filename or os.path.basename(str(getattr(file, "name", "") or ""))
    seekable = getattr(file, "seekable", lambda: False)()
    if not seekable:  # a pipe or socket: read once, so every try can send the same bytes
        data = file.read()
        if not isinstance(data, bytes):
            raise MimicMotionError(f"{name}: the file must be opened in binary mode ('rb')", code=INVALID_INPUT)
        return source_of(data, name=name, filename=given or None, content_type=content_type)
    start = file.tell()
    head = file.read(16)
    if not isinstance(head, bytes):
        raise MimicMotionError(f"{name}: the file must be opened in binary mode ('rb')", code=INVALID_INPUT)
    size = file.seek(0, io.SEEK_END) - start
    file.seek(start)
    kind = content_type or _guess(given, head)
    return Source(given or _default_name(name, kind), size, kind, _file=file, _start=start)


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(16)


def _guess(filename: str, head: bytes) -> str:
    guessed, _ = mimetypes.guess_type(filename) if filename else (None, None)
    if guessed and guessed.split("/")[0] in ("image", "video"):
        return guessed
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return guessed or "application/octet-stream"


def _default_name(name: str, content_type: str) -> str:
    return name + (mimetypes.guess_extension(content_type) or "")
