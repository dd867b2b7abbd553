"""Alembic migrations: the only source of the stockcast schema."""
