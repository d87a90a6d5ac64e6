"""The short soak for CI: 50,000 keep-alive requests and 5,000 open/close cycles after a
warm-up, RSS and descriptors within 10% (the full run: ``python -m tests.hardening.soak``)."""

from __future__ import annotations

import shutil

import pytest

from tests.hardening import soak


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_short_soak_leaves_rss_and_descriptors_flat():
    report = soak.run(requests=50_000, cycles=5_000, warm_requests=10_000, warm_cycles=1_000)
    assert report.requests >= 50_000 and report.cycles >= 5_000
    assert abs(report.rss_growth) <= soak.TOLERANCE, report.samples
    assert abs(report.fd_growth) <= soak.TOLERANCE, report.samples
