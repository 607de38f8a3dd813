"""The README cannot drift from the code: its library example runs, it stays short, and its links resolve.

The example (README.md's single ```python block) is run as written, except that ``hqa.load_mnist``
is replaced by a stand-in that returns 100 random 32x32 training images and 64 test images (half of
them for validation, as in the example) after checking that the README calls it with arguments the real function accepts. Everything else
(``fit`` with the quick profile's per-layer epochs and batches and a validation curve,
``reconstruct``, the codec, ``save``/``load``) is the real API, so a renamed function or argument
fails here. The fast test also narrows the preset the README asks for (``HQAConfig.mnist()``, still
called) to 4 channels and 16 codes, so that the 227 steps take seconds; the slow one runs the real
preset (~1.0M parameters, about 30 s on one thread).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch

import hqa
from hqa import HQAConfig, ImageSet

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 200
# Images the stand-in returns (the README validates on half of the test images).
FAKE_TRAIN, FAKE_TEST = 100, 64


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_is_at_most_200_lines():
    n = len(readme_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES} (move detail into docs/)"


def test_readme_keeps_the_two_setup_commands_verbatim():
    lines = readme_text().splitlines()
    assert "    pip install -e . && ./reproduce.sh mnist" in lines
    assert '    pip install -e ".[test]" && python -m pytest' in lines


def test_every_local_link_in_the_readme_exists():
    text = readme_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert any(t.startswith("docs/") for t in local), "the README links no docs/ page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links missing files: {missing}"
    for page in ("metrics", "profiles", "scaling-out", "speed", "modern-quantizers", "figures", "celeba", "library"):
        assert f"docs/{page}.md" in local, f"README.md does not link docs/{page}.md"


def test_every_local_link_in_the_docs_pages_exists():
    for page in sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).resolve().exists(), f"{page.name} links missing {target}"


def test_readme_has_one_python_example():
    assert len(python_blocks(readme_text())) == 1, "README.md should hold exactly one ```python block (the library example)"


@pytest.mark.parametrize(
    "preset", ["narrowed", pytest.param("real", marks=pytest.mark.slow)]
)
def test_readme_library_example_runs(monkeypatch, tmp_path, preset):
    (code,) = python_blocks(readme_text())
    real = hqa.load_mnist
    calls = []

    def stand_in(*args, **kwargs):
        inspect.signature(real).bind(*args, **kwargs)  # the README calls it as the real one takes it
        calls.append(kwargs)
        g = torch.Generator().manual_seed(0)
        sets = []
        for n, split in ((FAKE_TRAIN, "train"), (FAKE_TEST, "test")):
            images = torch.rand(n, 1, 32, 32, generator=g)
            sets.append(ImageSet(images, torch.randint(0, 10, (n,), generator=g), f"stand-in {split}"))
        return sets[0], sets[1]

    monkeypatch.setattr(hqa, "load_mnist", stand_in)
    if preset == "narrowed":
        mnist = HQAConfig.mnist  # the real preset, called as the README calls it, then narrowed

        def narrowed(**overrides):
            return mnist(**overrides).replace(codebook_size=16, code_dim=8, enc_widths=(4,) * 5, dec_widths=(4,) * 5)

        monkeypatch.setattr(HQAConfig, "mnist", staticmethod(narrowed))
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)  # tiny convolutions: one thread is several times faster on a busy machine
    torch.manual_seed(0)
    scope: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), scope)

    assert calls, "the example does not load MNIST through hqa.load_mnist"
    model = scope["model"]
    assert isinstance(model, hqa.HQA)
    assert model.trained_layers == model.num_layers == 5
    assert (tmp_path / "hqa.pt").exists()
    # every layer trained kept a learning curve on the validation images
    assert all(entry.get("curve") for entry in model.fit_log)
    codes = scope["codes"]
    assert codes.dtype == torch.long and codes.shape == (8, 1, 1)
    assert isinstance(scope["data"], bytes)
    assert scope["digits"].shape == (8, 1, 32, 32)
