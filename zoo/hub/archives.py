"""Preset archives (.tar.gz, .tgz, .tar, .zip) unpacked safely: no path
outside the target, no links, devices or FIFOs, bounded in total size
(ZOO_MAX_ARCHIVE_BYTES), and only what the manifest lists is kept.
"""

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from zoo import settings
from zoo.errors import UnsafeArchiveError
from zoo.hub import folder_format


def unpack_preset(archive, staging, unpacked):
    """Extract `archive` safely into `unpacked`, then move its preset (lifting
    a single wrapping folder) into `staging`."""
    unpacked.mkdir()
    extract_archive(archive, unpacked)
    root = unpacked
    children = list(unpacked.iterdir())
    if not (unpacked / folder_format.MANIFEST_FILE).exists() and len(children) == 1 and children[0].is_dir():
        root = children[0]
    for item in root.iterdir():
        os.replace(item, staging / item.name)


def extract_archive(archive, target):
    """Extract a .tar(.gz) or .zip, refusing anything that could escape `target`.

    Written by hand rather than `tarfile`'s data filter because the zoo also
    refuses links pointing inside the folder, covers zip files the same way,
    and caps the total size before writing a byte.
    """
    archive, target = Path(archive), Path(target)
    limit = settings.max_archive_bytes()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = [(info.filename, _zip_kind(info), info.file_size) for info in bundle.infolist()]
            _check_members(archive, members, limit)
            for info in bundle.infolist():
                _write_member(target, info.filename, info.is_dir(), lambda: bundle.open(info))
        return
    try:
        bundle = tarfile.open(archive, "r:*")
    except tarfile.TarError:
        raise UnsafeArchiveError(
            f"{archive} is not a readable .tar.gz, .tgz, .tar or .zip archive (the file is damaged, "
            "or another kind of file)."
        ) from None
    with bundle:
        members = bundle.getmembers()
        _check_members(archive, [(m.name, _tar_kind(m), m.size) for m in members], limit)
        for member in members:
            _write_member(target, member.name, member.isdir(), lambda: bundle.extractfile(member))


def _tar_kind(member):
    if member.isfile():
        return "file"
    if member.isdir():
        return "dir"
    return "link" if member.issym() or member.islnk() else "special file"


def _zip_kind(info):
    mode = info.external_attr >> 16  # Unix mode bits; 0 when the zip was made elsewhere
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file"  # a FIFO, device or socket
    return "dir" if info.is_dir() else "file"


def _check_members(archive, members, limit):
    total = 0
    for name, kind, size in members:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
            raise UnsafeArchiveError(f"{archive} contains the entry {name!r}, which points outside the folder; refused.")
        if kind not in ("file", "dir"):
            raise UnsafeArchiveError(f"{archive} contains {name!r}, a {kind}; presets hold only files and folders.")
        total += size
        if total > limit:
            raise UnsafeArchiveError(
                f"{archive} unpacks to more than {limit} bytes (ZOO_MAX_ARCHIVE_BYTES); refused."
            )


def _write_member(target, name, is_dir, open_member):
    path = target.joinpath(*PurePosixPath(name.replace("\\", "/")).parts)
    if is_dir:
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_member() as source, open(path, "wb") as destination:
        shutil.copyfileobj(source, destination)
