"""Decoding in a child process, for the one decoding plugin that can abort the whole process.

GDCM (``python-gdcm``), the only installed decoder of JPEG Lossless (process
14), aborts the process on some corrupt JPEG streams: a C++ exception escapes
to ``std::terminate`` ("terminate called after throwing an instance of
'gdcm::Exception'") and no ``except`` can stop it. The fuzz test found this on
about 1.5% of mutated JPEG Lossless frames. So GDCM decodes run here, in one
long-lived worker process (:func:`serve`, started on first use, ~0.7 s): a crash costs that file
(:class:`~deepoxymap.errors.DicomReadError`), never the app, and the next decode
starts a fresh worker. A decode that takes longer than :data:`TIMEOUT_S` kills
the worker.

Protocol (pipes, one request at a time, serialised by a lock): the parent sends
a length-prefixed pickle of ``(dataset, plugin)`` (the pixel-module elements and
the Pixel Data only); the worker answers with a length-prefixed JSON header
(``{"dtype", "shape"}`` or ``{"error"}``) followed by the raw array bytes. The
answer is never unpickled: a decoder corrupted by hostile data cannot make the
parent run code. The worker is a plain subprocess (not ``multiprocessing``),
so the host program's ``__main__`` is never re-run.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset

from deepoxymap.errors import DicomReadError

__all__ = ["ISOLATED_PLUGINS", "TIMEOUT_S", "decode_isolated", "serve"]

ISOLATED_PLUGINS = ("gdcm",)
"""Decoding plugins run in the worker process."""

TIMEOUT_S = 10.0
"""Longest one isolated decode may take before the worker is killed (seconds)."""

_PIXEL_KEYWORDS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "PixelData",
)
_DTYPES = {"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<f4", "<f8", ">u2", ">i2", "|b1", "<u8", "<i8"}
_LEN = struct.Struct("<Q")


class _Crashed(Exception):
    """The worker died or did not answer in time."""


def _minimal(ds: Dataset) -> Dataset:
    """The pixel-module elements and Pixel Data of ``ds`` (deferred values read), with its transfer syntax."""
    out = Dataset()
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    for kw in _PIXEL_KEYWORDS:
        if kw in ds:
            out[kw] = ds[kw]
    return out


class _Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from deepoxymap.io.dicom.isolated import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def _read(self, n: int, deadline: float) -> bytes:
        out = bytearray()
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Crashed("timeout")
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise _Crashed("the worker exited")
            out += chunk
        return bytes(out)

    def call(self, request: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        """Send one request; ``(header, payload)`` of the answer.

        Raises:
            _Crashed: the worker died or took longer than ``timeout``.
        """
        deadline = time.monotonic() + timeout
        try:
            stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
            stdin.write(_LEN.pack(len(request)) + request)
            stdin.flush()
        except OSError as exc:
            raise _Crashed(str(exc)) from exc
        head = self._read(_LEN.unpack(self._read(_LEN.size, deadline))[0], deadline)
        header = json.loads(head)
        payload = self._read(int(header.get("nbytes", 0)), deadline)
        return header, payload

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_lock = threading.Lock()
_worker: _Worker | None = None


def _shutdown() -> None:
    global _worker
    if _worker is not None:
        _worker.kill()
        _worker = None


atexit.register(_shutdown)


def _array(header: dict[str, Any], payload: bytes) -> NDArray[Any]:
    """The answer's array, after checking its dtype and size (the worker's output is not trusted)."""
    dtype, shape = str(header.get("dtype")), tuple(int(x) for x in header.get("shape", ()))
    if (
        dtype not in _DTYPES
        or min(shape, default=0) < 0
        or int(np.prod(shape)) * np.dtype(dtype).itemsize != len(payload)
    ):
        raise ValueError(f"malformed answer from the decoder worker ({dtype}, {shape}, {len(payload)} bytes)")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


def decode_isolated(ds: Dataset, plugin: str, name: str) -> NDArray[Any]:
    """``ds``'s pixels decoded by ``plugin`` in the worker process (the decoder's output array, read-only).

    Raises:
        DicomReadError: the decoder crashed the worker or took longer than
            :data:`TIMEOUT_S`.
        ValueError: the decoder refused the data (its message).
    """
    global _worker
    request = pickle.dumps((_minimal(ds), plugin), protocol=pickle.HIGHEST_PROTOCOL)
    with _lock:
        if _worker is None or _worker.proc.poll() is not None:
            _worker = _Worker()
        worker = _worker
        try:
            header, payload = worker.call(request, TIMEOUT_S)
        except _Crashed as exc:
            worker.kill()
            _worker = None
            why = "took too long" if str(exc) == "timeout" else "crashed on it (the file is corrupt)"
            raise DicomReadError(f"pixel data could not be decoded: the {plugin} decoder {why}", source=name) from exc
    if "error" in header:
        raise ValueError(str(header["error"]))
    return _array(header, payload)


def _answer(out: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    header["nbytes"] = len(payload)
    head = json.dumps(header).encode()
    out.write(_LEN.pack(len(head)) + head + payload)
    out.flush()


def serve() -> None:
    """The worker's main loop: decode requests from stdin until the parent closes the pipe.

    The protocol keeps the original stdout; file descriptor 1 is pointed at
    stderr so that a decoder writing to stdout cannot corrupt the answers.
    """
    from pydicom import config
    from pydicom.pixels import get_decoder

    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    config.settings.reading_validation_mode = config.IGNORE
    while True:
        size = inp.read(_LEN.size)
        if len(size) < _LEN.size:
            return
        ds, plugin = pickle.loads(inp.read(_LEN.unpack(size)[0]))  # from the parent: trusted
        try:
            arr, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, decoding_plugin=plugin)
            arr = np.ascontiguousarray(arr)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            _answer(out, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        _answer(out, {"dtype": arr.dtype.str, "shape": list(arr.shape)}, arr.tobytes())
