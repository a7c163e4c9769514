"""Progress across a retry: the first attempt of `flaky_progress` reports
1/4, 2/4 and fails with a retryable error; the retry reports 1/4 … 4/4.
The client must see progress only increase (the spec's MUST), so the
retry's repeats of 1/4 and 2/4 are not passed on."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import call_meta, mender_toml, proxy, text
from test_secrets import raw_server

pytestmark = pytest.mark.anyio

PIPELINE = """
[plugins.backoff]
bundled = "exponential-backoff"

[plugins.backoff.config]
base = "100ms"
factor = 2.0
max-delay = "500ms"
max-attempts = 3
jitter = "none"

[plugins.backoff.config.kinds]
resource = { action = "retry" }
rate-limited = { action = "retry" }

[services.raw]
strategies = ["backoff"]
guardrails = { max-attempts = 3 }
"""


async def test_progress_never_goes_backwards_across_a_retry(workdir: Path) -> None:
    async with proxy(mender_toml(workdir, {"raw": raw_server(workdir)}, PIPELINE)) as p:
        seen: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(value)

        r = await p.client.call_tool("flaky_progress", {}, progress_callback=on_progress)
        assert not r.is_error, text(r)
        assert text(r) == "done after 4 steps"
        # It really was retried: two runs upstream, two attempts recorded.
        assert (workdir / "runs").read_text().splitlines() == ["run", "run"]
        assert call_meta(r)["attempts"], call_meta(r)
    assert seen, "no progress reached the client"
    assert all(a < b for a, b in zip(seen, seen[1:])), f"progress went backwards: {seen}"
    assert seen[-1] == 4, seen
