"""The assembly cache: a hit is marked as used, and assemblies unused for a week are removed."""

import os
import time

from saga import synth

WEEK_AND_A_DAY = (synth.UNUSED_DAYS + 1) * 86_400


def _assembly(cache, key: str, age_seconds: float):
    directory = cache / key
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text("{}")
    then = time.time() - age_seconds
    os.utime(directory, (then, then))
    return directory


def test_a_cache_hit_is_marked_as_used(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CACHE", tmp_path)
    cached = _assembly(tmp_path, synth._digest({}), WEEK_AND_A_DAY)

    assert synth.cached_assembly() == cached
    assert time.time() - cached.stat().st_mtime < 60


def test_only_assemblies_unused_for_a_week_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CACHE", tmp_path)
    stale = _assembly(tmp_path, "stale", WEEK_AND_A_DAY)
    recent = _assembly(tmp_path, "recent", 86_400)

    synth._prune()

    assert not stale.exists()
    assert recent.exists()
