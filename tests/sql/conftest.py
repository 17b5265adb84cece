"""The database fixtures, for the SQL store's tests."""

from _fixtures.sql import pg_server, pg_url, sqlite_url, store_url

__all__ = ["pg_server", "pg_url", "sqlite_url", "store_url"]
