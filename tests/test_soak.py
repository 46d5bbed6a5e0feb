"""The fault soak's short version: jobs from concurrent clients while every kind of fault is injected.

The full run (`python -m benchmarks.soak`, ≥1000 jobs) is recorded in docs/performance.md; this one
proves the same two properties on every change: no job is lost and no job's work ever ran twice at once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.soak import FAULT_KINDS, find_overlaps, run_soak

pytestmark = pytest.mark.fleet


def test_no_job_is_lost_or_run_twice_while_every_kind_of_fault_is_injected(tmp_path: Path) -> None:
    report = run_soak(
        jobs=50, clients=4, dispatchers=2, fault_interval=1.5, cancel_ratio=0.1, seed=7, data_dir=tmp_path
    )
    states = Counter(outcome.state for outcome in report.jobs.values())
    assert all(report.faults[kind] >= 1 for kind in FAULT_KINDS), report.faults
    assert len(report.jobs) >= 50
    assert states["lost"] == 0, [o for o in report.jobs.values() if o.state == "lost"]
    assert report.overlaps == []
    assert states["completed"] > 0
    for outcome in report.jobs.values():
        if outcome.state == "failed":
            assert outcome.message and "internal error" not in outcome.message, outcome.message


def test_overlapping_work_on_one_job_is_found_in_the_stage_logs(tmp_path: Path) -> None:
    (tmp_path / "reconstruction-0.log").write_text(
        "work started job=aa stage=reconstruction-service at=10.0\n"
        "work ended job=aa stage=reconstruction-service at=12.0 outcome=ok\n"
    )
    (tmp_path / "reconstruction-1.log").write_text(
        "work started job=aa stage=reconstruction-service at=11.0\n"
        "work started job=bb stage=reconstruction-service at=20.0\n"  # killed mid-work: ends at the kill
    )
    (tmp_path / "postprocess.log").write_text(
        "work started job=bb stage=postprocess-service at=25.0\n"
        "work ended job=bb stage=postprocess-service at=26.0 outcome=ok\n"
    )
    overlaps = find_overlaps(tmp_path, {"reconstruction-1": 22.0})
    assert [job for job, _, _ in overlaps] == ["aa"]
