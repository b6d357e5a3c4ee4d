"""Where a client's spool file lives (owned, with the spool itself, by ``_sqlite_spool.py``'s maintainers)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .._config import ENV_SPOOL_DIR, AgentConfig

__all__ = ["spool_file_path"]


def spool_file_path(config: AgentConfig, base_url: str, api_key: str) -> Path:
    """One spool per (base URL, API key): named by a digest, so the file name does not reveal the key."""
    directory = config.spool_dir or os.environ.get(ENV_SPOOL_DIR)
    if not directory:
        import platformdirs  # here, not at module level: `import promptstream` stays cheap (docs/benchmarks.md)

        directory = platformdirs.user_cache_dir("promptstream")
    digest = hashlib.blake2b(f"{base_url}\x00{api_key}".encode(), digest_size=12, person=b"ps-spool").hexdigest()
    return Path(directory) / f"spool-{digest}.sqlite3"
