"""The speed benchmark runs end to end and reports every layer against the reference."""

from pathlib import Path

from benchmarks import speed


def test_speed_benchmark_writes_every_row_with_ratios(tmp_path: Path) -> None:
    out = tmp_path / "speed.md"
    argv = ["--batch-size", "2", "--steps", "1", "--eval-images", "0", "--default-allocator", "--out", str(out)]
    assert speed.main(argv) == 0
    text = out.read_text()
    for k in range(1, 6):
        assert f"| HQA layer {k} training |" in text and f"| HQA layer {k} eval" in text
    assert text.count("x |") == 5  # a speed-up for each trained layer, none where there is no reference
    assert "| vqvae bottom layer training |" in text and "Allocator: glibc's default" in text
