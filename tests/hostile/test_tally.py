"""The corpus stays at least 150 cases over every input kind (the README's Reliability section quotes the tally)."""

from __future__ import annotations

from tests.hostile import (test_episodes_corpus as ep, test_import_corpus as imp, test_names_corpus as nm,
                           test_shards_corpus as sh, test_unrealcv_corpus as cv, test_weights_corpus as wt)

TABLES = {
    "episodes (validate: meta.json, actions.csv, video.mp4)": ep.VALIDATE_CASES,
    "episodes (curate)": ep.CURATE_CASES,
    "shards (inspect --verify: manifest, Parquet, rejects)": sh.INSPECT_CASES,
    "shards (training reader)": sh.TRAIN_CASES,
    "Sekai videos + .npz": imp.SEKAI_CASES,
    "Sekai settings": imp.SEKAI_CONFIG_CASES,
    "generic CSV + video": imp.GENERIC_BAD_DATA,
    "generic mappings": imp.GENERIC_BAD_MAPPING,
    "Unreal exports (MP4 + CSV + JSON)": imp.UNREAL_CASES,
    "GTA recordings (JSON lines + CSV + video)": imp.GTA_CASES,
    "checkpoints (.safetensors)": wt.CHECKPOINT_CASES,
    "VAE weights (.safetensors, .pth)": wt.VAE_CASES,
    "RL policies": wt.RL_CASES,
    "generation actions CSV": wt.ACTIONS_CASES,
    "UnrealCV requests": cv.REQUEST_CASES,
    "UnrealCV framing and clients that break off": cv.FRAMING_CASES + cv.BREAK_OFF_CASES,
    "names that would become paths (the safe-name check, dataset names in settings)":
        [(repr(n), None) for n in nm.HOSTILE] + nm.PATH_OPTION_CASES,
}


def tally() -> dict[str, int]:
    return {k: len(v) for k, v in TABLES.items()}


def test_the_corpus_has_at_least_150_distinct_cases():
    for name, cases in TABLES.items():
        ids = [c[0] for c in cases]
        assert cases and len(ids) == len(set(ids)), name
    assert sum(tally().values()) >= 150, tally()


if __name__ == "__main__":  # python -m tests.hostile.test_tally: the table of the README
    for k, v in tally().items():
        print(f"| {k} | {v} |")
    print(f"| **total** (table cases; plus the single-scenario tests and 6 fuzzers) | {sum(tally().values())} |")
