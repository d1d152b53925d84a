"""schemathesis against the service's published OpenAPI: every operation, generated requests, every answer checked.

The schema is loaded from the app's own ``/openapi.json`` (in process, over ASGI) on a SQLite ledger with the
example pricebook, and each operation is called with a bounded number of generated requests
(``RATING_SCHEMATHESIS_EXAMPLES``, default 8) carrying an admin key. Each answer must not be a 5xx, its status
code must be one the operation documents, its content type the documented one and its body must match the
documented schema. Each failure this found was a bug of the server; each has a plain regression test beside the
route's other tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.python.asgi import shutdown_lifespans  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rating.registry import Registry  # noqa: E402
from rating.server import create_app  # noqa: E402
from tests.helpers import EXAMPLE, later  # noqa: E402
from tests.server.conftest import bearer  # noqa: E402

#: Generated requests per operation (and generation mode); raise it for a longer hunt.
EXAMPLES = int(os.environ.get("RATING_SCHEMATHESIS_EXAMPLES", "8"))
#: The checks every answer passes: no 5xx, a documented status code, content type and body.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api(tmp_path: Path, keys: Path, registry: Registry) -> Iterator[Any]:
    """The published schema of an app over a fresh SQLite ledger; the app's lifespan (started by schemathesis at
    the first call) is ended afterwards: it closes the ledger."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    registry.open_storage(url).close()
    app = create_app(url, [EXAMPLE], api_keys=keys, registry=registry, clock=later)
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        shutdown_lifespans()


def test_every_operation_answers_as_documented(api: Any) -> None:
    """Each operation, with valid and with invalid generated requests: every failure found, reported together."""
    failures = []
    for found in api.get_all_operations():
        operation = found.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problem = _hunt(operation, mode)
            if problem is not None:
                failures.append(f"{operation.label} ({mode.value}): {problem}")
    assert not failures, "\n\n".join(failures)


def _hunt(operation: Any, mode: GenerationMode) -> str | None:
    """The first failure of ``operation`` on generated requests of ``mode``, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=bearer("admin"), checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        return None
    except (AssertionError, BaseExceptionGroup) as error:  # a failed check, or a group of them
        return _said(error)
    except Exception as error:  # raised through the in-process ASGI transport: what a server answers 500
        return f"raised {type(error).__name__}: {error}"
    return None


def _said(error: BaseException) -> str:
    """A failure as schemathesis words it, with the request that reproduces it."""
    if isinstance(error, BaseExceptionGroup):
        return str(error) + "".join(f"\n  - {_said(inner)}" for inner in error.exceptions)
    return " ".join(str(error).split())[:1500]
