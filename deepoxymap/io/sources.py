"""Turn whatever a user gives (paths, folders, zips, uploads) into a flat list of entries.

Nothing here parses images. This module only walks folders, opens zip archives
safely and enforces the upload limits of :class:`deepoxymap.config.Settings`
(running totals in :class:`~deepoxymap.io.limits.Budget`):

* ``max_upload_files``: most entries accepted from one :func:`expand` call;
* ``max_upload_bytes``: most bytes accepted in total, counted after expansion
  as the bytes stream in (a zip member is never read past the limit);
* ``max_zip_ratio``: largest compression ratio accepted for one zip member over
  1 MiB; ``max_archive_ratio``: for a whole archive once it has expanded past
  :data:`~deepoxymap.io.limits.ZIP_FREE_BYTES` (many small members of zeros).

Zip members are streamed into memory in 1 MiB chunks (never extracted to
disk), each read stopping at the first limit it meets: its declared size, its
ratio, the archive's ratio, the upload's bytes. Members whose path is absolute
or climbs out of the archive (``../``) are rejected, as are encrypted members
and members nested more than one archive deep. Members are named by their full
path inside the archive (``study.zip:series/IM0001.dcm``); a name met twice (two
members of one path, two uploads of one name) gets `` [2]``, `` [3]`` appended
so that every message tells them apart.
"""

from __future__ import annotations

import io
import logging
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from deepoxymap.config import Settings
from deepoxymap.errors import ArchiveError, DeepOxyMapError
from deepoxymap.io.limits import MIB, ZIP_FREE_BYTES, Budget, fmt_bytes

__all__ = ["Entry", "Expanded", "Inflater", "Source", "expand", "is_nifti_name", "is_zip_name", "read_capped"]

log = logging.getLogger(__name__)

Source = str | Path | tuple[str, bytes]
"""One source: a path (file, folder, ``.zip``, NIfTI) or an upload ``(name, bytes)``."""

_ZIP_MAGIC = b"PK\x03\x04"
_JUNK_PARTS = ("__MACOSX",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")
_CHUNK = MIB
_IN_CHUNK = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Entry:
    """One candidate file.

    Attributes:
        name: display name (``folder/sub/file.dcm``, ``study.zip:sub/file.dcm``
            or the upload's name); used in every message about the file.
        path: the file on disk, or ``None`` for in-memory entries.
        data: the bytes of an in-memory entry (zip member, upload), else ``None``.
        size: size in bytes.
    """

    name: str
    path: Path | None
    data: bytes | None
    size: int

    def read(self) -> bytes:
        """All bytes of the entry."""
        if self.data is not None:
            return self.data
        return self._require_path().read_bytes()

    def head(self, n: int = 512) -> bytes:
        """The first ``n`` bytes (cheap for files on disk)."""
        if self.data is not None:
            return self.data[:n]
        with self._require_path().open("rb") as fh:
            return fh.read(n)

    def _require_path(self) -> Path:
        """The path of an entry that holds no bytes.

        Raises:
            DeepOxyMapError: the entry has neither bytes nor a path.
        """
        if self.path is None:
            raise DeepOxyMapError("entry has neither bytes nor a path on disk", source=self.name)
        return self.path


@dataclass
class Expanded:
    """Result of :func:`expand`: the entries plus every problem met on the way.

    Attributes:
        entries: readable entries, in a stable order.
        problems: ``(name, error, severity)`` for rejected sources/members;
            severity is ``"error"`` (user data skipped) or ``"info"``
            (auxiliary file such as ``.DS_Store`` ignored).
        budget: the running totals, shared with the rest of the load (gzip
            expansion, frames, stacks).
    """

    entries: list[Entry] = field(default_factory=list)
    problems: list[tuple[str, DeepOxyMapError, str]] = field(default_factory=list)
    budget: Budget | None = None


def is_nifti_name(name: str) -> bool:
    """``True`` for ``.nii`` and ``.nii.gz`` names."""
    n = name.lower()
    return n.endswith((".nii", ".nii.gz"))


def is_zip_name(name: str) -> bool:
    """``True`` for ``.zip`` names."""
    return name.lower().endswith(".zip")


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p in _JUNK_PARTS for p in parts) or (bool(parts) and parts[-1] in _JUNK_NAMES)


class _Names:
    """Display names made unique: the second ``a.dcm`` is ``a.dcm [2]``."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def unique(self, name: str) -> str:
        n = self.count.get(name, 0) + 1
        self.count[name] = n
        out = name if n == 1 else f"{name} [{n}]"
        while out != name and out in self.count:
            n += 1
            out = f"{name} [{n}]"
        if out != name:
            self.count[out] = 1
        return out


def read_capped(fh: IO[bytes], cap: int) -> tuple[bytes, bool]:
    """Stream at most ``cap`` bytes from ``fh`` in 1 MiB chunks.

    Returns:
        ``(data, False)`` when the stream ended within ``cap`` bytes, else
        ``(b"", True)``: the stream holds more, and what was read is dropped.
        Memory stays at the bytes read (never ``cap`` allocated up front).
    """
    buf = io.BytesIO()
    n = 0
    while n <= cap:
        chunk = fh.read(min(_CHUNK, cap + 1 - n))
        if not chunk:
            return buf.getvalue(), False
        buf.write(chunk)
        n += len(chunk)
    return b"", True


class Inflater:
    """Bounded streaming decompression of an in-memory zlib, gzip or raw deflate buffer.

    Input is fed 64 KiB at a time and output is produced at most 1 MiB at a
    time, so that memory follows what :meth:`read` returns, never what the
    stream could expand to. Concatenated gzip members are read as one stream.

    Args:
        data: the compressed bytes.
        wbits: ``zlib`` window bits: ``16 + zlib.MAX_WBITS`` for gzip,
            ``-zlib.MAX_WBITS`` for raw deflate (Deflated DICOM).

    Attributes:
        eof: the end of the compressed stream was reached.
    """

    def __init__(self, data: bytes | memoryview, wbits: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._wbits = wbits
        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self.eof = False

    def _feed(self) -> bool:
        """Next input for the decompressor; ``False`` when the input is used up."""
        if self._pos >= len(self._data):
            return False
        self._tail = bytes(self._data[self._pos : self._pos + _IN_CHUNK])
        self._pos += len(self._tail)
        return True

    def _member_end(self) -> None:
        """At the end of one compressed stream: start the next gzip member, or stop."""
        rest = self._d.unused_data
        if self._wbits > zlib.MAX_WBITS and (rest or self._pos < len(self._data)):
            nxt = rest + bytes(self._data[self._pos : self._pos + 2 - len(rest)]) if len(rest) < 2 else rest
            if nxt[:2] == _GZIP_MAGIC:
                self._d = zlib.decompressobj(self._wbits)
                self._tail = rest
                return
        self.eof = True

    def read(self, n: int) -> bytes:
        """Up to ``n`` more decompressed bytes (fewer only at the end of the stream or of the input).

        Raises:
            zlib.error: the compressed data is corrupt.
        """
        buf = io.BytesIO()
        got = 0
        while got < n and not self.eof:
            if not self._tail and not self._feed():
                out = self._d.decompress(b"", min(n - got, _CHUNK))  # output still held by the decompressor
                buf.write(out)
                got += len(out)
                if self._d.eof:
                    self._member_end()
                if not out:
                    break
                continue
            out = self._d.decompress(self._tail, min(n - got, _CHUNK))
            self._tail = self._d.unconsumed_tail
            buf.write(out)
            got += len(out)
            if self._d.eof:
                self._member_end()
        return buf.getvalue()


def _unsafe_member(name: str) -> str | None:
    """Why a zip member name is unsafe, or ``None``."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "has an absolute path"
    if any(p == ".." for p in norm.split("/")):
        return "has a '../' path that points outside the archive"
    return None


class _Zip:
    """One archive being expanded (its expansion counted against its own size)."""

    def __init__(self, zname: str, size: int, budget: Budget, out: Expanded, names: _Names) -> None:
        self.zname, self.budget, self.out, self.names = zname, budget, out, names
        self.size = size
        self.cap = max(ZIP_FREE_BYTES, int(budget.settings.max_archive_ratio * size))
        self.expanded = 0

    def problem(self, name: str, message: str, severity: str = "error", hint: str | None = None) -> None:
        self.out.problems.append((name, ArchiveError(message, source=name, hint=hint), severity))

    def expand(self, zf: zipfile.ZipFile) -> None:
        """Read every member (see the module docstring); stop at an upload or archive limit."""
        members = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename)
        for n, info in enumerate(members):
            if self.budget.exhausted:
                self.budget.skipped += len(members) - n
                return
            mname = self.names.unique(f"{self.zname}:{info.filename}")
            if not self.member(zf, info, mname):
                self.budget.skipped += len(members) - n - 1
                return

    def _rejected(self, info: zipfile.ZipInfo, mname: str) -> bool:
        """Checks from the member's header alone; ``True`` (and one problem) when it is not read."""
        ratio_limit = self.budget.settings.max_zip_ratio
        if _is_junk(info.filename):
            self.problem(mname, "auxiliary file ignored", "info")
            return True
        why = _unsafe_member(info.filename)
        if why:
            self.problem(mname, f"zip member rejected: its name {why}")
            return True
        if info.flag_bits & 0x1:
            self.problem(mname, "zip member is encrypted and cannot be read")
            return True
        if is_zip_name(info.filename):
            self.problem(mname, "zip archives inside a zip are not opened", hint="unpack it first")
            return True
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MIB and ratio > ratio_limit:
            self.problem(
                mname,
                f"zip member rejected as a possible zip bomb: compression ratio {ratio:.0f}:1 exceeds "
                f"the limit of {ratio_limit:.0f}:1 ({info.file_size} bytes unpacked)",
            )
            return True
        return False

    def member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, mname: str) -> bool:
        """Read one member into an entry (or one problem); ``False`` when reading must stop."""
        if self._rejected(info, mname):
            return True
        err = self.budget.admit_file(mname)
        if err is not None:
            self.out.problems.append((mname, err, "error"))
            return False
        settings = self.budget.settings
        caps = [
            (info.file_size, "declared"),
            (max(MIB, int(settings.max_zip_ratio * info.compress_size)), "ratio"),
            (self.cap - self.expanded, "archive"),
            (self.budget.bytes_left, "upload"),
        ]
        cap, which = min(caps, key=lambda c: c[0])
        try:
            with zf.open(info) as fh:
                data, over = read_capped(fh, max(cap, 0))
        except Exception as exc:  # noqa: BLE001 - zipfile, zlib, bz2 and lzma raise many kinds on corrupt data
            self.budget.files -= 1
            self.problem(mname, f"zip member could not be read ({type(exc).__name__}: {exc})")
            return True
        self.expanded += len(data) if not over else max(cap, 0)
        if over:
            self.budget.files -= 1
            return self._over(mname, which, info)
        self.budget.bytes += len(data)
        if data[:4] == _ZIP_MAGIC:
            self.problem(mname, "zip archives inside a zip are not opened", hint="unpack it first")
            return True
        self.out.entries.append(Entry(mname, None, data, len(data)))
        return True

    def _over(self, mname: str, which: str, info: zipfile.ZipInfo) -> bool:
        """Report the limit a member's stream ran into; ``False`` when the whole archive (or upload) must stop."""
        settings = self.budget.settings
        if which == "declared":
            self.problem(
                mname,
                f"zip member is larger than its header declares ({info.file_size} bytes; possible zip bomb); "
                "reading stopped at the declared size and the member was skipped",
            )
            return True
        if which == "ratio":
            self.problem(
                mname,
                f"zip member rejected as a possible zip bomb: it expands to more than "
                f"{settings.max_zip_ratio:.0f} times its {info.compress_size} compressed bytes",
            )
            return True
        if which == "archive":
            self.problem(
                mname,
                f"zip archive rejected as a possible zip bomb: its members expand to more than "
                f"{fmt_bytes(self.cap)} ({settings.max_archive_ratio:.0f} times its {fmt_bytes(self.size)}, "
                f"or {fmt_bytes(ZIP_FREE_BYTES)}); reading stopped at this member and the later ones were not read",
                hint="raise max_archive_ratio if the archive is genuine",
            )
            return False
        self.out.problems.append((mname, self.budget.too_many_bytes(mname, info.file_size), "error"))
        return False


def _expand_zip(zname: str, opener: IO[bytes] | Path, size: int, budget: Budget, out: Expanded, names: _Names) -> None:
    try:
        zf = zipfile.ZipFile(opener)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, ValueError, EOFError, struct errors...
        out.problems.append((zname, ArchiveError(f"not a readable zip archive ({exc})", source=zname), "error"))
        return
    with zf:
        _Zip(zname, size, budget, out, names).expand(zf)


def _walk(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p


def _normalise(sources: Source | Iterable[Source]) -> list[Source]:
    if isinstance(sources, str | Path):
        return [sources]
    if isinstance(sources, tuple) and len(sources) == 2 and isinstance(sources[1], bytes | bytearray | memoryview):
        return [sources]
    return list(sources)


def _add_file(name: str, path: Path | None, data: bytes | None, size: int, budget: Budget, out: Expanded) -> None:
    """One plain file or upload: counted against the limits, then an entry."""
    err = budget.take(name, size)
    if err is not None:
        out.problems.append((name, err, "error"))
    else:
        out.entries.append(Entry(name, path, data, size))


def _expand_folder(path: Path, budget: Budget, out: Expanded, names: _Names) -> None:
    for p in _walk(path):
        if budget.exhausted:
            budget.skipped += 1
            continue
        rel = names.unique(f"{path.name}/{p.relative_to(path).as_posix()}")
        if _is_junk(rel):
            out.problems.append((rel, ArchiveError("auxiliary file ignored", source=rel), "info"))
            continue
        if is_zip_name(p.name):
            _expand_zip(rel, p, p.stat().st_size, budget, out, names)
        else:
            _add_file(rel, p, None, p.stat().st_size, budget, out)


def _expand_one(src: Source, budget: Budget, out: Expanded, names: _Names) -> None:
    if isinstance(src, tuple):
        name, data = names.unique(str(src[0])), bytes(src[1])
        if _is_junk(name):
            out.problems.append((name, ArchiveError("auxiliary file ignored", source=name), "info"))
        elif is_zip_name(name) or data[:4] == _ZIP_MAGIC:
            _expand_zip(name, io.BytesIO(data), len(data), budget, out, names)
        else:
            _add_file(name, None, data, len(data), budget, out)
        return
    path = Path(src)
    if path.is_dir():
        _expand_folder(path, budget, out, names)
    elif path.is_file():
        name = names.unique(str(path))
        if is_zip_name(path.name):
            _expand_zip(name, path, path.stat().st_size, budget, out, names)
        else:
            _add_file(name, path, None, path.stat().st_size, budget, out)
    else:
        out.problems.append((str(path), ArchiveError("no such file or folder", source=str(path)), "error"))


def _source_name(src: object) -> str:
    return str(src[0]) if isinstance(src, tuple) and src else str(src)


def expand(sources: Source | Iterable[Source], settings: Settings, budget: Budget | None = None) -> Expanded:
    """Flatten sources into entries, enforcing the upload limits.

    Args:
        sources: one source or an iterable of them (paths as ``str``/``Path``,
            uploads as ``(name, bytes)``).
        settings: the limits (``max_upload_files``, ``max_upload_bytes``,
            ``max_zip_ratio``, ``max_archive_ratio``).
        budget: running totals to continue (a new one by default).

    Returns:
        The entries and the problems (missing paths, unsafe zip members, limits
        hit; once a limit stops reading, one more problem counts the files
        that were not read).
    """
    budget = budget or Budget(settings)
    out = Expanded(budget=budget)
    names = _Names()
    srcs = _normalise(sources)
    for i, src in enumerate(srcs):
        if budget.exhausted:
            budget.skipped += len(srcs) - i
            break
        try:
            _expand_one(src, budget, out, names)
        except Exception as exc:
            log.debug("source %r could not be read", src, exc_info=True)
            name = _source_name(src)
            out.problems.append((name, ArchiveError(f"could not be read ({exc})", source=name), "error"))
    if budget.skipped:
        out.problems.append(
            (
                "upload",
                ArchiveError(
                    f"{budget.skipped} more file(s) were not read because an upload limit was reached",
                    source="upload",
                ),
                "error",
            )
        )
    return out
