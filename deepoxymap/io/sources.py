"""Turn whatever a user gives (paths, folders, zips, uploads) into a flat list of entries.

Nothing here parses images. This module only walks folders, opens zip archives
safely and enforces the upload limits of :class:`deepoxymap.config.Settings`:

* ``max_upload_files``: most entries accepted from one :func:`expand` call;
* ``max_upload_bytes``: most (uncompressed) bytes accepted in total;
* ``max_zip_ratio``: largest compression ratio accepted for one zip member.

Zip members are read into memory (never extracted to disk); members whose path
is absolute or climbs out of the archive (``../``) are rejected, as are
encrypted members and members nested more than one archive deep.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from deepoxymap.config import Settings
from deepoxymap.errors import ArchiveError, DeepOxyMapError

__all__ = ["Entry", "Expanded", "Source", "expand", "is_nifti_name", "is_zip_name"]

Source = str | Path | tuple[str, bytes]
"""One source: a path (file, folder, ``.zip``, NIfTI) or an upload ``(name, bytes)``."""

_ZIP_MAGIC = b"PK\x03\x04"
_JUNK_PARTS = ("__MACOSX",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


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
    """

    entries: list[Entry] = field(default_factory=list)
    problems: list[tuple[str, DeepOxyMapError, str]] = field(default_factory=list)


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


class _Budget:
    """Running totals against the upload limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files = 0
        self.bytes = 0
        self.exhausted: str | None = None

    def take(self, name: str, size: int, out: Expanded) -> bool:
        """Account for one entry; ``False`` (and one problem recorded) once a limit is hit."""
        if self.exhausted is not None:
            return False
        if self.files + 1 > self.settings.max_upload_files:
            self.exhausted = "files"
            out.problems.append(
                (
                    name,
                    ArchiveError(
                        f"too many files: the limit is {self.settings.max_upload_files} files per upload; "
                        "this file and every later one were not read",
                        source=name,
                        hint="upload fewer files at once or raise max_upload_files",
                    ),
                    "error",
                )
            )
            return False
        if self.bytes + size > self.settings.max_upload_bytes:
            self.exhausted = "bytes"
            out.problems.append(
                (
                    name,
                    ArchiveError(
                        f"upload too large: reading this file ({size} bytes) would exceed the limit of "
                        f"{self.settings.max_upload_bytes} bytes in total; this file and every later one were not read",
                        source=name,
                        hint="upload fewer files at once or raise max_upload_bytes",
                    ),
                    "error",
                )
            )
            return False
        self.files += 1
        self.bytes += size
        return True


def _unsafe_member(name: str) -> str | None:
    """Why a zip member name is unsafe, or ``None``."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "has an absolute path"
    if any(p == ".." for p in norm.split("/")):
        return "has a '../' path that points outside the archive"
    return None


def _expand_zip(zname: str, opener: io.BufferedIOBase | Path, budget: _Budget, out: Expanded) -> None:
    try:
        zf = zipfile.ZipFile(opener)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        out.problems.append((zname, ArchiveError(f"not a readable zip archive ({exc})", source=zname), "error"))
        return
    with zf:
        infos = sorted(zf.infolist(), key=lambda i: i.filename)
        for info in infos:
            if info.is_dir():
                continue
            mname = f"{zname}:{info.filename}"
            if _is_junk(info.filename):
                out.problems.append((mname, ArchiveError("auxiliary file ignored", source=mname), "info"))
                continue
            why = _unsafe_member(info.filename)
            if why:
                out.problems.append(
                    (mname, ArchiveError(f"zip member rejected: its name {why}", source=mname), "error")
                )
                continue
            if info.flag_bits & 0x1:
                out.problems.append(
                    (mname, ArchiveError("zip member is encrypted and cannot be read", source=mname), "error")
                )
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 1024 * 1024 and ratio > budget.settings.max_zip_ratio:
                out.problems.append(
                    (
                        mname,
                        ArchiveError(
                            f"zip member rejected as a possible zip bomb: compression ratio {ratio:.0f}:1 exceeds "
                            f"the limit of {budget.settings.max_zip_ratio:.0f}:1 ({info.file_size} bytes unpacked)",
                            source=mname,
                        ),
                        "error",
                    )
                )
                continue
            if not budget.take(mname, info.file_size, out):
                return
            try:
                with zf.open(info) as fh:
                    # never trust the declared size: read at most what the budget still allows
                    allowed = budget.settings.max_upload_bytes - (budget.bytes - info.file_size)
                    data = fh.read(max(allowed, 0) + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
                out.problems.append(
                    (mname, ArchiveError(f"zip member could not be read ({exc})", source=mname), "error")
                )
                continue
            if len(data) > info.file_size:
                budget.exhausted = "bytes"
                out.problems.append(
                    (
                        mname,
                        ArchiveError(
                            "zip member is larger than its header declares (possible zip bomb); reading stopped here",
                            source=mname,
                        ),
                        "error",
                    )
                )
                return
            if is_zip_name(info.filename) or data[:4] == _ZIP_MAGIC:
                out.problems.append(
                    (
                        mname,
                        ArchiveError("zip archives inside a zip are not opened", source=mname, hint="unpack it first"),
                        "error",
                    )
                )
                continue
            out.entries.append(Entry(mname, None, data, len(data)))


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


def expand(sources: Source | Iterable[Source], settings: Settings) -> Expanded:
    """Flatten sources into entries, enforcing the upload limits.

    Args:
        sources: one source or an iterable of them (paths as ``str``/``Path``,
            uploads as ``(name, bytes)``).
        settings: the limits (``max_upload_files``, ``max_upload_bytes``,
            ``max_zip_ratio``).

    Returns:
        The entries and the problems (missing paths, unsafe zip members, limits hit).
    """
    out = Expanded()
    budget = _Budget(settings)
    for src in _normalise(sources):
        if budget.exhausted:
            break
        if isinstance(src, tuple):
            name, data = str(src[0]), bytes(src[1])
            if _is_junk(name):
                out.problems.append((name, ArchiveError("auxiliary file ignored", source=name), "info"))
                continue
            if is_zip_name(name) or data[:4] == _ZIP_MAGIC:
                _expand_zip(name, io.BytesIO(data), budget, out)
            elif budget.take(name, len(data), out):
                out.entries.append(Entry(name, None, data, len(data)))
            continue
        path = Path(src)
        if path.is_dir():
            for p in _walk(path):
                rel = f"{path.name}/{p.relative_to(path).as_posix()}"
                if _is_junk(rel):
                    continue
                if is_zip_name(p.name):
                    _expand_zip(rel, p, budget, out)
                elif not budget.take(rel, p.stat().st_size, out):
                    break
                else:
                    out.entries.append(Entry(rel, p, None, p.stat().st_size))
                if budget.exhausted:
                    break
        elif path.is_file():
            if is_zip_name(path.name):
                _expand_zip(path.name, path, budget, out)
            elif budget.take(str(path), path.stat().st_size, out):
                out.entries.append(Entry(str(path), path, None, path.stat().st_size))
        else:
            out.problems.append((str(path), ArchiveError("no such file or folder", source=str(path)), "error"))
    return out
