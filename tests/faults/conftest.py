"""The in-process API fixture (tests/api) for the in-process fault tests."""

from tests.api.conftest import api  # noqa: F401
