"""The PromptStream reference server: protocol v1 (docs/protocol.md) backed by SQLite or PostgreSQL.

Needs the ``server`` extra (``pip install 'promptstream[server]'``). The SDK core never imports this package.
"""

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._assignment import assign_bucket, pick_variant
from ._database import ENV_SERVER_DB, Database, open_storage, parse_database
from ._pricing import ENV_PRICES, Price, Prices
from ._runner import ServerThread, check_workers, default_data_dir, resolve_server_keys, serve
from ._storage import StoreError
from ._store import Store
from ._templates import Completion, ModelProvider, TemplateProvider
from ._wire import VariantSpec

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_PRICES",
    "ENV_SERVER_DB",
    "Completion",
    "Database",
    "ModelProvider",
    "Price",
    "Prices",
    "ServerThread",
    "Store",
    "StoreError",
    "TemplateProvider",
    "VariantSpec",
    "assign_bucket",
    "check_workers",
    "create_app",
    "default_data_dir",
    "open_storage",
    "parse_database",
    "pick_variant",
    "resolve_server_keys",
    "serve",
]
