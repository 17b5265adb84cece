"""Fixtures that start real services (nats-server, moto's S3 server) for the test suite.

Import the fixtures a test folder needs in its conftest.py: ``from _fixtures.s3 import s3_server``.
"""
