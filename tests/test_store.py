"""The result store: atomic rows, and a folder's manifest guarding against mixed runs."""

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.store import ResultStore

MANIFEST = {"profile": "quick", "dataset": "mnist", "train_size": 5000, "code_version": "aaa"}


def _row(version: str) -> dict:
    return {"system": "hqa", "seed": 0, "layer": 1, "bits": 2048, "metric": "mse", "feature_space": "",
            "value": 0.5, "profile": "quick", "dataset": "mnist", "train_size": 5000, "code_version": version}


def test_rows_round_trip_and_same_run_resumes(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert store.claim(MANIFEST) is None
    store.write_rows(store.cell_path("hqa", 0), [_row("aaa")])
    assert store.claim(MANIFEST) is None  # the same run: resumed, nothing moved
    assert store.has_cell("hqa", 0)
    rows = store.rows()
    assert len(rows) == 1 and rows["value"].item() == 0.5 and rows["feature_space"].item() == ""


def test_older_code_version_is_set_aside_not_mixed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.claim(MANIFEST)
    store.write_rows(store.cell_path("hqa", 0), [_row("aaa")])
    store.model_path("hqa", 0).parent.mkdir(parents=True)
    store.model_path("hqa", 0).write_bytes(b"weights")
    note = store.claim({**MANIFEST, "code_version": "bbb"})
    assert note is not None and "stale-aaa" in note
    assert not store.has_cell("hqa", 0) and not store.model_path("hqa", 0).exists()
    stale = tmp_path / "stale-aaa"
    assert pd.read_csv(stale / "rows" / "hqa-seed0.csv")["code_version"].item() == "aaa"
    assert (stale / "models" / "hqa-seed0.pt").read_bytes() == b"weights"
    assert store.manifest()["code_version"] == "bbb"
    # back to the first version: set aside again into a new folder, the earlier one kept
    store.write_rows(store.cell_path("hqa", 0), [_row("bbb")])
    store.claim(MANIFEST)
    assert (tmp_path / "stale-aaa" / "rows" / "hqa-seed0.csv").exists()
    assert pd.read_csv(tmp_path / "stale-bbb" / "rows" / "hqa-seed0.csv")["code_version"].item() == "bbb"
    store.write_rows(store.cell_path("hqa", 0), [_row("aaa")])
    assert "stale-aaa-2" in store.claim({**MANIFEST, "code_version": "bbb"})  # stale-aaa is taken


def test_another_profile_is_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.claim(MANIFEST)
    with pytest.raises(ValueError, match="holds rows of another run.*profile"):
        store.claim({**MANIFEST, "profile": "paper", "code_version": "bbb"})


def test_a_redefined_profile_of_new_code_is_set_aside_but_other_data_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.claim({**MANIFEST, "steps": [400], "preprocess": "resize"})
    store.write_rows(store.cell_path("hqa", 0), [_row("aaa")])
    with pytest.raises(ValueError, match="preprocess"):  # same code, other data: another run
        store.claim({**MANIFEST, "steps": [400], "preprocess": "pad"})
    with pytest.raises(ValueError, match="steps"):  # same code version cannot redefine steps
        store.claim({**MANIFEST, "steps": [800], "preprocess": "resize"})
    note = store.claim({**MANIFEST, "code_version": "bbb", "steps": [800], "preprocess": "resize"})
    assert note is not None and "stale-aaa" in note and not store.has_cell("hqa", 0)


def test_corrupt_manifest_is_named(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="run.json is corrupt"):
        ResultStore(tmp_path).claim(MANIFEST)


def test_a_lease_admits_one_holder_until_released(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    lease = store.try_lease("hqa-seed0")
    assert lease is not None
    assert store.try_lease("hqa-seed0") is None  # held by a live process (this one)
    assert store.try_lease("hqa-seed1") is not None  # another task is free
    store.release(lease)
    assert store.try_lease("hqa-seed0") is not None


def test_a_lease_of_a_dead_process_or_past_its_expiry_is_taken_over(tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys
    import time

    store = ResultStore(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = store.lease_path("hqa-seed0")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "token": "x", "expires": time.time() + 600}))
    assert store.try_lease("hqa-seed0") is not None  # its process is gone
    other_host = {"host": "elsewhere", "pid": 1, "token": "y"}
    path.write_text(json.dumps({**other_host, "expires": time.time() + 600}))
    assert store.try_lease("hqa-seed0") is None  # live as far as we can tell: not yet expired
    path.write_text(json.dumps({**other_host, "expires": time.time() - 1}))
    assert store.try_lease("hqa-seed0") is not None  # expired: its holder stopped renewing


def test_a_kept_lease_is_renewed_and_released_even_on_error(tmp_path: Path) -> None:
    import json
    import time

    store = ResultStore(tmp_path)
    lease = store.try_lease("k", ttl=1.0)
    assert lease is not None
    first = json.loads(lease.path.read_text())["expires"]
    with pytest.raises(RuntimeError):
        with store.kept(lease, every=0.05):
            time.sleep(0.3)
            assert json.loads(lease.path.read_text())["expires"] > first  # renewed while held
            raise RuntimeError("training failed")
    assert not lease.path.exists()
    # a lease taken over by another worker is not released by the old holder
    again = store.try_lease("k")
    assert again is not None and not store.renew(lease)
    store.release(lease)
    assert again.path.exists()


def test_concurrent_claims_give_one_holder(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        got = list(pool.map(_claim_and_hold, [str(tmp_path)] * 8))
    assert sum(got) == 1  # every process stays alive while the others try: one wins


def _claim_and_hold(root: str) -> bool:
    import time

    lease = ResultStore(root).try_lease("contested")
    time.sleep(0.5)  # stay alive, so the lease is not stale for the others
    return lease is not None


def test_takers_of_one_stale_lease_give_one_holder(tmp_path: Path) -> None:
    import json
    import time
    from concurrent.futures import ProcessPoolExecutor

    store = ResultStore(tmp_path)
    path = store.lease_path("contested")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "old", "expires": time.time() - 1}))
    with ProcessPoolExecutor(4) as pool:
        got = list(pool.map(_claim_and_hold, [str(tmp_path)] * 4))
    assert sum(got) == 1
    assert json.loads(path.read_text())["token"] != "old"
