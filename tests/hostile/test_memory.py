"""Publish and rebuildctl stay under 512 MiB RSS on every hostile input of issue #15.

Runs the benchmark's cases (bench/bench_hostile.py) at full size: each in a child
process under RLIMIT_AS of 1 GiB, so a regression (a bomb expanded, a feed read whole) fails
here at once instead of eating the machine; the child's peak RSS is read from wait4.
"""

from __future__ import annotations

import pytest

from bench.bench_hostile import BUDGET_MIB, run

# What each case must end with: published (0) or refused with one clear error (1), and the error's words.
EXPECTED = {
    "publish_diffoscope_gzip_bomb_3gib": (1, "decompressed: larger than the limit"),
    "publish_diffoscope_11mib_report_published": (0, ""),
    "publish_diffoscope_999k_nested_tags_published": (0, ""),
    "publish_log_96mib": (1, "larger than the limit of 67,108,864 bytes"),
    "ctl_json_stream_500mb": (1, "larger than the limit of 33,554,432 bytes"),
    "ctl_gzip_bomb_content_encoding": (1, "decompressed: larger than the limit"),
    "ctl_gzip_bomb_raw": (1, "decompressed: larger than the limit"),
    "ctl_json_30mb_of_empty_arrays": (1, "as objects in memory"),
    "ctl_trickle_one_byte_per_half_second": (1, "3-second deadline"),
}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_publish_and_rebuildctl_stay_under_512_mib_on_every_hostile_input():
    figures = run(smoke=False, limit_as_mib=1024)
    cases = figures["cases"]
    assert set(cases) == set(EXPECTED)
    for name, (status, words) in EXPECTED.items():
        case = cases[name]
        assert case["exit"] == status, (name, case)
        assert words in case["stderr"], (name, case)
        assert case["peak_rss_mib"] < BUDGET_MIB, (name, case)
    assert cases["ctl_trickle_one_byte_per_half_second"]["seconds"] < 10
