"""Tortoise models of the plugin platform and the database set-up.

This package imports nothing else of the project, so the runtime, the GraphQL layer and the
command line can all depend on it.

Example:
    >>> from models import CatalogPlugin, database_config
    >>> database_config("sqlite://:memory:")["apps"]["models"]["migrations"]
    'migrations'
"""

from models.broadcast import BroadcastPayload
from models.catalog import CatalogPlugin, CatalogTag, PluginStats, PluginVersion
from models.database import (
    MODELS_APP,
    close_database,
    database_config,
    dialect,
    init_database,
    migrate_database,
)
from models.events import Delivery, EventRow, PluginLog, PluginStorage
from models.installed import InstalledPlugin
from models.rating import PluginRating
from models.repository import Repository

__all__ = [
    "MODELS_APP",
    "BroadcastPayload",
    "CatalogPlugin",
    "CatalogTag",
    "Delivery",
    "EventRow",
    "InstalledPlugin",
    "PluginLog",
    "PluginRating",
    "PluginStats",
    "PluginStorage",
    "PluginVersion",
    "Repository",
    "close_database",
    "database_config",
    "dialect",
    "init_database",
    "migrate_database",
]
