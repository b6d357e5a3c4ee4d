"""Where the spool lives, and whether that place is safe to keep events in.

- The directory: ``spool_dir=``, else ``PROMPTSTREAM_SPOOL_DIR``, else the user cache directory as platformdirs names
  it on each platform (``~/.cache/promptstream`` on Linux, ``~/Library/Caches/promptstream`` on macOS,
  ``%LOCALAPPDATA%\\promptstream\\Cache`` on Windows).
- The file: one per base URL, ``spool-<digest>.sqlite3``. Not per API key, so that a rotated key strands nothing:
  pending events go out with the key of whichever process sends them (docs/delivery.md, "Key rotation").
- Safety (POSIX): the directories we create are created 0700, each of them; a directory we did not create keeps its
  mode (never chmod-ed, a symlink never followed to change its target); and a location that another user can write
  to, or that another user owns, is refused: the agent keeps events in memory instead, with one warning. On Windows
  the per-user profile's inherited ACL is what makes the default location private (docs/platforms.md).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

from .._config import ENV_SPOOL_DIR, AgentConfig
from ._spool import SpoolUnavailableError

__all__ = [
    "UnsafeSpoolLocationError",
    "default_spool_dir",
    "legacy_spool_file_path",
    "prepare_spool_directory",
    "spool_directory",
    "spool_file_path",
]

APP_NAME = "promptstream"
SPOOL_GLOB = "spool-*.sqlite3"


class UnsafeSpoolLocationError(SpoolUnavailableError):
    """The spool directory is writable by, or belongs to, someone else: events are kept in memory instead."""


def default_spool_dir(system: str | None = None) -> Path:
    """The user cache directory for ``system`` (``sys.platform`` by default), as platformdirs defines it.

    Example:
        ```python
        print(default_spool_dir())  # e.g. /home/me/.cache/promptstream
        ```
    """
    # imported here, not at module level: `import promptstream` stays cheap (docs/benchmarks.md)
    import platformdirs

    system = system or sys.platform
    dirs: type[platformdirs.PlatformDirsABC]
    if system == "win32":
        from platformdirs.windows import Windows as dirs
    elif system == "darwin":
        from platformdirs.macos import MacOS as dirs
    elif system.startswith(("linux", "freebsd", "openbsd", "netbsd", "sunos", "aix", "cygwin")):
        from platformdirs.unix import Unix as dirs
    else:
        dirs = platformdirs.PlatformDirs  # whatever platformdirs picks for this platform
    # appauthor=False: no "<author>\" level on Windows; the app's own name is the directory
    return Path(dirs(APP_NAME, appauthor=False).user_cache_dir)


def spool_directory(config: AgentConfig) -> Path:
    """The directory the spool files of ``config`` live in."""
    directory = config.spool_dir or os.environ.get(ENV_SPOOL_DIR)
    return Path(directory) if directory else default_spool_dir()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12, person=b"ps-spool").hexdigest()


def spool_file_path(config: AgentConfig, base_url: str, api_key: str | None = None) -> Path:
    """The spool file for ``base_url``: named by a digest, shared by every process (and key) that sends there.

    ``api_key`` is accepted for the callers of the older signature and is not used: the spool is per server.

    Example:
        ```python
        path = spool_file_path(AgentConfig(spool_dir=Path("/var/cache/app")), "https://ps.example.com")
        ```
    """
    return spool_directory(config) / f"spool-{_digest(base_url)}.sqlite3"


def legacy_spool_file_path(config: AgentConfig, base_url: str, api_key: str) -> Path:
    """Where earlier versions kept the spool of (``base_url``, ``api_key``); its events are adopted on open."""
    digest = _digest(f"{base_url}\x00{api_key}")
    return spool_directory(config) / f"spool-{digest}.sqlite3"


def prepare_spool_directory(directory: Path, *, system: str | None = None) -> None:
    """Create ``directory`` (each missing component 0700) and check that only this user can write to it.

    Raises UnsafeSpoolLocationError for a directory that is group- or world-writable, owned by another user, or
    not a directory. Never changes the mode of anything it did not create.
    """
    directory = Path(os.path.abspath(directory))
    missing: list[Path] = []
    current = directory
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for component in reversed(missing):
        try:
            os.mkdir(component, 0o700)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to chmod; the check below judges the last one
        _make_owner_only(component)
    check_spool_directory(directory, system=system)


def _make_owner_only(created: Path) -> None:
    """Exactly 0700 on a directory we just created (mkdir's mode went through the umask, which may take more)."""
    if not hasattr(os, "fchmod") or not hasattr(os, "O_NOFOLLOW"):
        return  # Windows: no POSIX modes; the directory inherits its parent's ACL
    fd = os.open(created, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fchmod(fd, 0o700)  # through the descriptor: never a symlink someone swapped in meanwhile
    finally:
        os.close(fd)


def check_spool_directory(directory: Path, *, system: str | None = None) -> None:
    """Refuse a spool directory others could write to (POSIX); see prepare_spool_directory."""
    info = os.stat(directory)  # a symlink is followed to judge its target, never to change it
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeSpoolLocationError(f"spool location {directory} is not a directory")
    if (system or sys.platform) == "win32" or not hasattr(os, "geteuid"):
        return  # no POSIX owner or modes; see docs/platforms.md for the Windows design
    if info.st_uid != os.geteuid():
        raise UnsafeSpoolLocationError(
            f"spool directory {directory} belongs to another user (uid {info.st_uid}); choose a directory of your own"
        )
    if info.st_mode & 0o022:
        raise UnsafeSpoolLocationError(
            f"spool directory {directory} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o});"
            " choose a private directory or remove group/other write permission"
        )
