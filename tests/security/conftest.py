"""The in-process API fixture (tests/api) for the hostile-input and secrets tests."""

from tests.api.conftest import api  # noqa: F401
