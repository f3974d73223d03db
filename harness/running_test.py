"""The pytest test running now, and its run's seed: set by the plugin, read by the API.

A module of its own that imports nothing, so that the plugin can set it without importing
the harness (torch, Hypothesis) and `assert_conv2d_matches` can read it without importing
pytest. None outside a pytest run that loaded the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunningTest:
    nodeid: str
    run_seed: int  # the run's --im2col-seed, printed in pytest's header

    def campaign_seed(self) -> int:
        """The seed of this test's campaigns: the same in every xdist worker, and again
        whenever the run is repeated with its seed; different from other tests' so that
        they do not all draw the same cases."""
        from harness.campaign.engine import derive_seed  # only once a test asks for a campaign

        return derive_seed(self.run_seed, self.nodeid)


current: RunningTest | None = None
