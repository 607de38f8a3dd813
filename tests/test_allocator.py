import platform
import subprocess
import sys
from pathlib import Path

import pytest

# Ten "steps" that each allocate, fill and free tensors of 8-64 MB, as a quantizer step does;
# prints the page faults of steps 2-10. glibc maps every block over 32 MB afresh (and so
# faults it in again) unless freed memory is kept.
_PROBE = """
import resource, sys, torch
from hqa.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.set_num_threads(1)
z, e = torch.randn(8192, 64), torch.randn(256, 64)
faults = []
for step in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    d = torch.cdist(z, e)
    a = torch.empty(16 * 2**20).fill_(1.0)
    b = torch.softmax(a.view(-1, 256), 1)
    del a
    c = b * 2
    del b, c, d
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, sum(faults[1:]))
"""


def _huge_pages_always() -> bool:
    """With transparent huge pages always on, a fault maps 2 MB, and fault counts say little."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def _probe(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.skipif(_huge_pages_always(), reason="page faults count 2 MB huge pages here")
def test_kept_memory_is_reused_instead_of_faulted_in_every_step() -> None:
    _, plain_faults = _probe("plain")
    kept, kept_faults = _probe("keep")
    assert kept == "True"
    assert plain_faults > 9 * 30_000  # >= two 64 MB blocks of 4 KiB pages per step
    assert kept_faults < plain_faults / 3
