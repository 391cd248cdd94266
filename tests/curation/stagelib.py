"""A stage for the engine tests: it counts the frames of each episode and says so in a drop record, and
records in ``record_dir`` (read from PLAYMILL_TEST_RECORD when the driver builds it) which object was set up
in which process."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from curation.stage import DropSpan, Frame, Stage


class FrameCounter(Stage):
    name = "counter"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.record_dir = Path(os.environ["PLAYMILL_TEST_RECORD"])
        self.token = secrets.token_hex(8)  # made once, in the driver: copies carry it to the workers

    def setup(self) -> None:
        (self.record_dir / f"setup-{os.getpid()}-{self.token}").write_text("")

    def start(self, ep) -> None:
        super().start(ep)
        self.frames = 0

    def process(self, items):
        self.frames += sum(isinstance(it, Frame) for it in items)
        return items

    def finish(self):
        return [DropSpan(-1, -1, self.name, f"{self.frames} frames seen by {self.token}", kind="episode")]
