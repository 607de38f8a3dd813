"""Hyperparameter / fix comparison for issue 13 (not part of the suite): each named config is
trained on the offline 5k MNIST (resized) and evaluated at every rate on the 5k eval split.
Runs configs in parallel processes. Usage: python exp/hparam.py OUTDIR DEVICE NAME [NAME ...]"""
import json, os, sys, time
import torch
import torch.multiprocessing as mp

DATA = os.environ.get("HQA_DATA_ROOT", "/work/shared/data/mnist-5k")

def spec(name):
    # name: system:lr:batch:s1/s2/s3/s4/s5[:key=val,...]
    parts = name.split(":")
    system, lr, bs, steps = parts[0], float(parts[1]), int(parts[2]), [int(s) for s in parts[3].split("/")]
    extra = {}
    if len(parts) > 4 and parts[4]:
        for kv in parts[4].split(","):
            k, v = kv.split("=")
            extra[k] = type(getattr(__import__("hqa").HQAConfig(), k))(v) if k not in ("vq_code", "codebook_loss") else v
    return system, lr, bs, steps, extra

def build(system, lr, extra):
    from hqa import HQA, HQAConfig
    from baselines.hams import hams_config
    from baselines.vqvae import VQVAE, vqvae_config
    base = HQAConfig.mnist(lr=lr)
    if system == "vqvae":
        return VQVAE(vqvae_config(base).replace(**extra))
    return HQA(hams_config(system, base).replace(**extra))

def work(args):
    name, device, out, threads = args
    torch.set_num_threads(threads)
    from hqa.allocator import keep_freed_memory; keep_freed_memory()
    from hqa.data import load_mnist
    from benchmarks.run import subset
    from benchmarks.classifier import load_or_train_classifier
    from benchmarks.fidelity import classifier_space
    from benchmarks.metrics import evaluate_system
    system, lr, bs, steps, extra = spec(name)
    tr, te = load_mnist(DATA)
    test = subset(te, 5000, seed=1)
    _, path = load_or_train_classifier(tr, 8, seed=0, cache=out + "/cache", progress=False)
    space = classifier_space(path, test.images)
    m = build(system, lr, extra)
    n = len(tr.images)
    epochs = [max(1, -(-s * bs // n)) for s in steps]
    if system == "vqvae":
        epochs = [max(1, -(-steps[0] * bs // n))] * 5
    t0 = time.time()
    m.fit(tr.images, epochs, batch_size=bs, seed=0, device=device, progress=False, compile=False, heldout=test.images[:256], curve_points=16)
    train_s = time.time() - t0
    res = evaluate_system(m, test.images, test.labels, [space], 0)
    table = {}
    for r in res:
        table.setdefault(r.layer, {})[r.metric] = r.value
    logs = [{k: v for k, v in l.items()} for l in m.fit_log]
    rec = {"name": name, "train_s": train_s, "metrics": table, "fit_log": logs}
    with open(f"{out}/{name.replace('/', '_').replace(':', '~')}.json", "w") as f:
        json.dump(rec, f)
    def drop(curve, key="heldout_pixel_mse"):
        v = [p[key] for p in curve]
        q = max(1, len(v) // 4)
        return 100 * (v[-q - 1] - v[-1]) / v[-1] if len(v) > q else float("nan")
    lines = [f"== {name}: train {train_s:.0f}s"]
    for l in logs:
        k = l["layer"]; t = table[k]
        lines.append(f"  L{k} steps {l['steps']:5d} {l['seconds']:6.1f}s mse {t['mse']:.4f} err {t.get('class_error', 0):5.1f} rfid {t.get('rfid', 0):7.1f} effb {t['effective_bits']:7.1f} moved {l.get('codes_moved')} last-quarter drop {drop(l['curve']):5.1f}%")
    print("\n".join(lines), flush=True)

if __name__ == "__main__":
    out, device, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    threads = max(1, (os.cpu_count() or 2) // len(names))
    # train the classifier once before the workers
    from hqa.data import load_mnist
    from benchmarks.classifier import load_or_train_classifier
    tr, _ = load_mnist(DATA)
    load_or_train_classifier(tr, 8, seed=0, cache=out + "/cache", progress=False)
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(names)) as pool:
        for _ in pool.imap_unordered(work, [(n, device, out, threads) for n in names]):
            pass
