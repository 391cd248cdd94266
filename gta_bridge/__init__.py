"""playmill gta_bridge: GTA V recordings (ScriptHookVDotNet mod + OBS video) into playmill episodes.

Public API (see gta_bridge/README.md):

* :func:`import_gta` / :class:`GtaImportConfig` / :class:`GtaImportResult` (``gta_bridge.importer``)
* :func:`read_recording`, :class:`RecordingError`, :class:`Reject` (``gta_bridge.recording``)
* :func:`validate_scenario`, :class:`Scenario`, :class:`ScenarioError`, ``SCHEMA_PATH`` (``gta_bridge.scenario``)
* :class:`AlignmentError` (``gta_bridge.sync``)
* :func:`simulate_recording` / :class:`SimConfig` (``gta_bridge.sim``: a simulator with ground truth)

Imports only ``capture`` from playmill's packages (DESIGN.md section 1).
"""

from __future__ import annotations

from gta_bridge.importer import GtaImportConfig, GtaImportError, GtaImportResult, import_gta
from gta_bridge.recording import Recording, RecordingError, Reject, read_recording
from gta_bridge.scenario import SCHEMA_PATH, Scenario, ScenarioError, validate_scenario
from gta_bridge.sync import AlignmentError

__all__ = [
    "AlignmentError", "GtaImportConfig", "GtaImportError", "GtaImportResult", "Recording", "RecordingError", "Reject",
    "SCHEMA_PATH", "Scenario", "ScenarioError", "import_gta", "read_recording", "validate_scenario",
]
