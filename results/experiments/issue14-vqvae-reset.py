import sys, time, torch
from hqa.data import load_mnist
from baselines.vqvae import VQVAE, vqvae_config
from hqa.config import HQAConfig
from hqa.system import FitRun
from benchmarks.metrics import mse
torch.set_num_threads(2)
rule, k = sys.argv[1], int(sys.argv[2])
train, test = load_mnist("/work/shared/data/mnist-5k", size=32)
cfg = vqvae_config(HQAConfig.preset("mnist")).replace(reset_rule=rule)
m = VQVAE(cfg)
t = time.time()
log = m._fit_layer(k, train.images, 5, FitRun((64,)*5, 0, torch.device("cpu"), progress=False, heldout=test.images[:256], curve_points=6))
m.trained.fill_(5); m.eval()
x = test.images[:2000]
codes = m.encode(x, k)
xh = m.decode(codes, k)
print(rule, k, f"{time.time()-t:.0f}s mse {mse(x, xh):.4f} codes {codes.unique().numel()} moved {log.get('codes_moved')}",
      [round(p['heldout_pixel_mse'],4) for p in log['curve']])
