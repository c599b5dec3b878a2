from tests.engine.conftest import amo, engine, receiver  # noqa: F401 — the engine's sandbox fixtures
