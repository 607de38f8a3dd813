"""Issue 24: is a retrain bit-identical? Compares one seed's rows of a fresh run with a committed
sweep's rows, value by value, at the same code version:

    python -m benchmarks.run --dataset mnist --systems hqa,vqvae --seeds 1 --jobs 2 --out /tmp/det/mnist
    python results/experiments/issue24-determinism.py /tmp/det/mnist results/mnist hqa,vqvae > determinism.jsonl

One JSON line per (system, metric): how many values both runs have, how many are equal as floats,
the largest absolute and relative difference, and (for the learning curves) the first step where
they differ. A first line records both runs' code versions, machines and this CPU's model name.
Timings (``*_seconds``) are left out: they are not expected to repeat.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import pandas as pd

KEY = ["system", "seed", "layer", "step", "bits", "metric", "feature_space"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rows(folder: Path, system: str, seed: int) -> pd.DataFrame:
    path = folder / "rows" / f"{system}-seed{seed}.csv"
    if not path.exists():
        raise SystemExit(f"no rows for {system} seed {seed} in {folder} ({path} is missing)")
    frame = pd.read_csv(path)
    frame = frame[~frame["metric"].str.endswith("_seconds")]
    return frame[KEY + ["value"]].fillna({"feature_space": "", "layer": -1, "step": -1})


def compare(new: pd.DataFrame, ref: pd.DataFrame) -> list[dict]:
    both = new.merge(ref, on=KEY, suffixes=("_new", "_ref"))
    out = []
    for (system, metric), g in both.groupby(["system", "metric"]):
        diff = (g["value_new"] - g["value_ref"]).abs()
        rel = diff / g["value_ref"].abs().where(g["value_ref"] != 0)
        differs = g[g["value_new"] != g["value_ref"]]
        line = {"system": system, "metric": metric, "values": len(g), "identical": int((diff == 0).sum()),
                "max_abs_diff": float(diff.max()), "max_rel_diff": float(rel.max()) if rel.notna().any() else 0.0}
        if metric.startswith("curve_") and len(differs):
            line["first_differing_step"] = int(differs["step"].min())
        if metric in ("mse", "class_error", "rfid", "information_bits") and len(differs):
            line["examples"] = [
                {"bits": int(r.bits), "feature_space": r.feature_space, "new": r.value_new, "ref": r.value_ref}
                for r in differs.sort_values("bits").itertuples()
            ][:6]
        out.append(line)
    return out


def main(argv: list[str]) -> None:
    new_dir, ref_dir, systems = Path(argv[0]), Path(argv[1]), argv[2].split(",")
    seed = int(argv[3]) if len(argv) > 3 else 0
    runs = {}
    for name, folder in (("new", new_dir), ("ref", ref_dir)):
        manifest = json.loads((folder / "run.json").read_text())
        last = [json.loads(x) for x in (folder / "runs.jsonl").read_text().splitlines() if x.strip()][-1]
        runs[name] = {"folder": str(folder), "code_version": manifest.get("code_version"),
                      "machine": last.get("machine"), "finished": last.get("finished"), "wall_seconds": last.get("wall_seconds"),
                      "compiled": last.get("compiled")}
    print(json.dumps({"runs": runs, "cpu_model_now": cpu_model(), "seed": seed}))
    for system in systems:
        for line in compare(rows(new_dir, system, seed), rows(ref_dir, system, seed)):
            print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv[1:])
