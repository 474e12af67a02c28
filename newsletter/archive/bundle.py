"""A folder or a ZIP of files, read safely: nothing outside it, nothing bigger than it says.

A ZIP is checked as a whole before any post is read: a member whose path leaves the archive's
folder (``../``, an absolute path, a drive letter), a symbolic link, or sizes that add up past
``MAX_UNPACKED`` (a ZIP bomb: a few KB that inflate to gigabytes) refuse the source. A member
is never read past the size its header declares, and a folder is never left through a link.
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from newsletter.archive.entry import MAX_ENTRIES, MAX_SOURCE_BYTES, SourceError

MAX_UNPACKED = 200 * 1024 * 1024
MAX_MEMBER = 20 * 1024 * 1024
MAX_FILES = 4 * MAX_ENTRIES
# What macOS and editors leave in folders and ZIPs: never posts.
_LITTER = ("__MACOSX", ".DS_Store", "Thumbs.db")


class Bundle:
    """Named files, read one at a time; names are relative POSIX paths."""

    def __init__(self, label: str) -> None:
        self.label = label

    def names(self) -> list[str]:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the underlying file."""


def _litter(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p in _LITTER or p.startswith("._") for p in parts)


class FolderBundle(Bundle):
    def __init__(self, root: Path) -> None:
        super().__init__(root.name or str(root))
        self.root = root.resolve()
        found: list[str] = []
        total = 0
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink() and not path.resolve().is_relative_to(self.root):
                continue  # a link out of the folder: not part of it
            if not path.is_file():
                continue
            name = path.relative_to(self.root).as_posix()
            if _litter(name):
                continue
            total += path.stat().st_size
            if total > MAX_UNPACKED or len(found) >= MAX_FILES:
                raise SourceError(f"{self.label}: the folder is too large to import at once.")
            found.append(name)
        self._names = found

    def names(self) -> list[str]:
        return list(self._names)

    def read(self, name: str) -> bytes:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise SourceError(f"{self.label}: {name} lies outside the folder.")
        with path.open("rb") as handle:
            data = handle.read(MAX_MEMBER + 1)
        if len(data) > MAX_MEMBER:
            raise SourceError(f"{self.label}: {name} is larger than {MAX_MEMBER >> 20} MB.")
        return data


def _member_name(info: zipfile.ZipInfo, label: str) -> str:
    raw = info.filename
    path = PurePosixPath(raw.replace("\\", "/"))
    if (
        raw.startswith(("/", "\\"))
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
        or "\0" in raw
    ):
        raise SourceError(
            f"{label}: the ZIP holds a path outside its folder ({raw[:100]!r}); nothing was "
            "imported."
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise SourceError(f"{label}: the ZIP holds a symbolic link ({raw[:100]!r}); refused.")
    return path.as_posix()


class ZipBundle(Bundle):
    def __init__(self, data: bytes | Path, label: str) -> None:
        super().__init__(label)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise SourceError(f"{label} is not a readable ZIP file ({exc}).") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_FILES:
            raise SourceError(f"{label}: the ZIP holds more than {MAX_FILES} files.")
        self._members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = _member_name(info, label)
            if info.is_dir() or _litter(name):
                continue
            total += info.file_size
            if info.file_size > MAX_MEMBER or total > MAX_UNPACKED:
                raise SourceError(
                    f"{label}: the ZIP unpacks to more than {MAX_UNPACKED >> 20} MB "
                    f"(or one file to more than {MAX_MEMBER >> 20} MB); refused as a ZIP bomb "
                    "would be."
                )
            self._members[name] = info

    def names(self) -> list[str]:
        return list(self._members)

    def read(self, name: str) -> bytes:
        info = self._members[name]
        try:
            with self.zip.open(info) as handle:
                # zipfile stops at the declared size and checks the CRC: a lying header fails.
                return handle.read(info.file_size + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            ValueError,
            EOFError,
            NotImplementedError,
        ) as exc:
            raise SourceError(f"{self.label}: {name} could not be unpacked ({exc}).") from None

    def close(self) -> None:
        self.zip.close()


def open_path(path: Path) -> Bundle:
    """Open a folder or a ZIP file named on the command line."""
    if path.is_dir():
        return FolderBundle(path)
    if path.stat().st_size > MAX_SOURCE_BYTES:
        raise SourceError(f"{path.name} is larger than {(MAX_SOURCE_BYTES + 1) >> 20} MB.")
    return ZipBundle(path, path.name)


def without_common_folder(names: list[str]) -> dict[str, str]:
    """Map each name to itself less a top folder that every name shares (a zipped folder).

    A folder and a ZIP of that folder then name their posts alike, so importing one after the
    other adds nothing twice.
    """
    tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
    if len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names):
        top = tops.pop()
        return {n: n[len(top) + 1 :] for n in names}
    return {n: n for n in names}


def each_file(bundle: Bundle, suffixes: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """Yield (stable name, member name) of the files whose names end in ``suffixes``."""
    names = bundle.names()
    short = without_common_folder(names)
    for name in sorted(names):
        if name.lower().endswith(suffixes):
            yield short[name], name
