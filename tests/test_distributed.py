"""Data parallelism (chapter 21): torchrun launches of ``attn_lesson.ddp`` give the weights of one
process with the same global batch, and the reference runner spread over two processes writes
the runs of the serial command. Every torchrun here is a real 2-process launch on the CPU (gloo),
the smoke test CI runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attn_lesson import ddp, results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import reference  # noqa: E402

# Equal weights "up to floating-point rounding": the all-reduce and the split of the mean over
# B images into two means over B/2 change the order of float32 sums (eps = 1.2e-7), so after a
# few dozen SGD steps the weights (|w| < ~2) may differ by a few units in the last place.
ATOL = 1e-5
SMALL = ["--n-train", "256", "--n-test", "50", "--batch", "32", "--epochs", "2", "--threads", "1"]
TIMEOUT_S = 240


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          f"--nproc-per-node={nproc}", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def max_diff(a: dict, b: dict, buffers: bool) -> float:
    keys = [k for k in a if ("running" in k) == buffers and "num_batches" not in k]
    assert keys
    return max((a[k].float() - b[k].float()).abs().max().item() for k in keys)


def test_two_processes_with_half_batches_equal_one_process_with_the_whole_batch(tmp_path, keep_threads):
    """A model without batch norm (the ViT: layer norm only): DDP over 2 processes, B/2 each,
    against one process with batch B, the same seed and the same sampler order."""
    torchrun(["-m", "attn_lesson.ddp", "--model", "vit", "--out", str(tmp_path / "two"), *SMALL])
    ddp.main(["--model", "vit", "--out", str(tmp_path / "one"), *SMALL])
    two, one = (torch.load(tmp_path / f / "weights.pt", weights_only=True) for f in ("two", "one"))
    start = {k: v for k, v in ddp.build_model("vit").state_dict().items()}
    log2, log1 = (json.loads((tmp_path / f / "log.json").read_text()) for f in ("two", "one"))
    assert (log2["world_size"], log2["per_process_batch"], log2["backend"]) == (2, 16, "gloo")
    assert (log1["world_size"], log1["per_process_batch"]) == (1, 32)
    assert max_diff(two, one, buffers=False) <= ATOL
    assert max_diff(two, start, buffers=False) > 100 * ATOL       # training moved the weights
    # the two ranks' first batches are the single process's first batch, interleaved
    assert sorted(log2["first_indices"][0][:4]) == sorted(log1["first_indices"][0][:8:2])
    assert log2["train_loss"] == pytest.approx(log1["train_loss"], abs=1e-5)


def test_with_batch_norm_ddp_equals_one_process_that_splits_each_batch(tmp_path, keep_threads):
    """The backbone has batch norm, whose statistics are per process: DDP equals one process
    that runs the two halves of each batch separately (--ghost 2), running statistics included,
    and differs from one process with the whole batch."""
    torchrun(["-m", "attn_lesson.ddp", "--model", "resnet", "--out", str(tmp_path / "two"), *SMALL])
    ddp.main(["--model", "resnet", "--ghost", "2", "--out", str(tmp_path / "ghost"), *SMALL])
    ddp.main(["--model", "resnet", "--out", str(tmp_path / "whole"), *SMALL])
    two, ghost, whole = (torch.load(tmp_path / f / "weights.pt", weights_only=True)
                         for f in ("two", "ghost", "whole"))
    assert max_diff(two, ghost, buffers=False) <= ATOL
    assert max_diff(two, ghost, buffers=True) <= ATOL
    assert torch.equal(two["stem.1.num_batches_tracked"], ghost["stem.1.num_batches_tracked"])
    assert max_diff(two, whole, buffers=False) > 100 * ATOL


def test_inspect_shows_the_broadcast_and_the_gradient_all_reduce(tmp_path):
    torchrun(["-m", "attn_lesson.ddp", "--model", "resnet", "--inspect", "--out", str(tmp_path), *SMALL])
    r0, r1 = (json.loads((tmp_path / f"inspect_rank{r}.json").read_text()) for r in (0, 1))
    assert r0["param0_before_ddp"] != r1["param0_before_ddp"]               # own seeds
    assert r0["param0_after_ddp"] == r1["param0_after_ddp"] == r0["param0_before_ddp"]
    assert r0["grad_local_norm"] != r1["grad_local_norm"]
    assert r0["grad_synced_norm"] == pytest.approx(r1["grad_synced_norm"], rel=1e-6)
    assert max(r0["synced_minus_mean_of_local"], r1["synced_minus_mean_of_local"]) <= 1e-6
    assert r1["buffer0_before_forward"] != r0["buffer0_before_forward"]
    assert r1["buffer0_after_forward"] == r0["buffer0_before_forward"]     # rank 0's, broadcast


def test_ddp_bad_inputs(tmp_path, keep_threads):
    with pytest.raises(ValueError, match="model must be one of"):
        ddp.build_model("mlp")
    with pytest.raises(ValueError, match="parts must be a positive int"):
        ddp.split_batch(torch.zeros(4), 0)
    with pytest.raises(ValueError, match="does not split into 3"):
        ddp.split_batch(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="must be divisible by the number of processes"):
        ddp.main(["--ghost", "3", "--out", str(tmp_path), *SMALL])
    with pytest.raises(ValueError, match="must be a multiple of --batch"):
        ddp.main(["--n-train", "100", "--batch", "32", "--out", str(tmp_path)])
    for bad in (["--batch", "0"], ["--threads", "two"], ["--lr", "-1"], ["--model", "mlp"]):
        with pytest.raises(SystemExit):
            ddp.main(["--out", str(tmp_path), *bad])
    with pytest.raises(SystemExit, match="needs several processes"):
        ddp.main(["--inspect", "--out", str(tmp_path)])


TINY = """# tiny

```{code-cell}
REFERENCE = {
    "data": {"n_train": 64, "n_test": 32, "seed": 0},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.005},
    "seeds": [0, 1, 2, 3, 4],
    "keep_models": ["B"],
    "arms": {"A": {}, "B": {"attention": {"name": "se", "reduction": 4}}},
}
```
"""
# what a torchrun worker runs: the reference script pointed at the tiny chapter, cache and outputs
WORKER = """import sys
from pathlib import Path
sys.path.insert(0, {scripts!r})
import reference
reference.chapter_source = lambda ch: Path({md!r})
reference.CACHE = Path({cache!r})
reference.run("99", out_dir=Path({out!r}), threads=1)
"""


def test_distributed_reference_writes_the_runs_of_the_serial_command(tmp_path, monkeypatch, keep_threads):
    md = tmp_path / "99_tiny.md"
    md.write_text(TINY)
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    monkeypatch.setattr(reference, "CACHE", tmp_path / "serial_cache")
    serial = json.loads(reference.run("99", out_dir=tmp_path / "serial", threads=1).read_text())
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(scripts=str(ROOT / "scripts"), md=str(md),
                                    cache=str(tmp_path / "ddp_cache"), out=str(tmp_path / "ddp")))
    log = torchrun([str(worker)]).stdout
    assert "[rank 1]" in log and "[rank 0]" in log
    dist = json.loads((tmp_path / "ddp" / "99_tiny.json").read_text())
    results.validate(dist)
    # the same runs: every history equal, timings (wall_time, images_per_sec) apart
    timing = ("wall_time", "images_per_sec")
    strip = {name: [{k: v for k, v in rec.items() if k not in timing} for rec in recs]
             for name, recs in serial["arms"].items()}
    assert {name: [{k: v for k, v in rec.items() if k not in timing} for rec in recs]
            for name, recs in dist["arms"].items()} == strip
    assert dist["config"] == serial["config"]
    ps, pd = serial["provenance"], dist["provenance"]
    assert (ps["processes"], pd["processes"]) == (1, 2)
    assert ps["threads_per_run"] == pd["threads_per_run"] == 1
    assert ps["device"] == pd["device"] and "NPROC=2" in pd["command"]
    assert pd["runs_from_cache"] == 0
    # the same cache files (names and histories) and the kept models, one per seed of arm B
    assert sorted(p.name for p in (tmp_path / "ddp_cache").iterdir()) == \
        sorted(p.name for p in (tmp_path / "serial_cache").iterdir())
    ref_s = results.Reference("99_tiny", serial["config"], None, serial["provenance"], tmp_path / "serial" / "99_tiny.json")
    ref_d = results.Reference("99_tiny", dist["config"], None, dist["provenance"], tmp_path / "ddp" / "99_tiny.json")
    ws, wd = ref_s.models("B"), ref_d.models("B")
    assert sorted(wd) == [0, 1, 2, 3, 4]
    assert all(torch.equal(ws[s][k], wd[s][k]) for s in ws for k in ws[s])
    # a second distributed command finds every run in the cache
    log = torchrun([str(worker)]).stdout
    again = json.loads((tmp_path / "ddp" / "99_tiny.json").read_text())
    assert again["provenance"]["runs_from_cache"] == 10


def test_reference_command_line_checks_nproc_and_threads(capsys):
    for bad in (["02", "--nproc", "x"], ["02", "--nproc", "0"], ["02", "--threads", "-1"]):
        with pytest.raises(SystemExit):
            reference.main(bad)
        assert "must be a positive int" in capsys.readouterr().err
    assert reference.torchrun_command(["02", "--threads=1"], 2)[1:5] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
