from tests.engine.conftest import service  # noqa: F401 — the job context on the neutral driver's CRM
