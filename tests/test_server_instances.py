"""Server instances sharing one PostgreSQL database behave as one server for run idempotency (issue 17)."""

from __future__ import annotations

import msgspec


def test_one_idempotency_key_on_two_store_instances_at_once_makes_one_run(pg_url: str) -> None:
    """Two servers sharing one PostgreSQL database: the same Idempotency-Key sent to both at once runs the model once
    and both answer the same run (the claim row is in the database, not in either process)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from promptstream.server._pgstore import PgStore

    entered, gate = threading.Event(), threading.Event()
    calls: list[str] = []

    class Gated:
        def complete(self, template: str, inputs: dict[str, object]) -> str:
            calls.append(template)
            entered.set()
            assert gate.wait(30)
            return template

    first, second = PgStore(pg_url, provider=Gated()), PgStore(pg_url, provider=Gated())
    try:
        prompt = first.create_prompt("default", "p", "Hi {{name}}")
        key = ("runs", "same-key", "hash")

        def run(store: PgStore) -> tuple[int, bytes]:
            return store.create_run(
                "default", prompt["prompt_id"], {"name": "x"}, "u", idempotency=key, encode=msgspec.json.encode
            )

        with ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(run, store) for store in (first, second, first, second)]
            assert entered.wait(30)
            gate.set()
            results = [answer.result(timeout=60) for answer in answers]
        assert {status for status, _ in results} == {200} and len({body for _, body in results}) == 1
        assert len(calls) == 1 and first.count("runs") == second.count("runs") == 1
    finally:
        gate.set()
        first.close()
        second.close()
