"""The flow's HTTP API, as Lightning App's ``lightning.app.api``: ``configure_api()`` returns these."""

from ._http_methods import Delete, Get, HttpMethod, Post, Put

__all__ = ["Delete", "Get", "HttpMethod", "Post", "Put"]
