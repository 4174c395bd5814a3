"""samples/train_digits.py under torchrun (skipped without torch): 2 ranks (DDP over gloo on
CPU, deterministic algorithms) SIGKILLed mid-epoch and resumed from the saved state end with
the uninterrupted run's weights bit for bit, and 1 rank with the whole global batch ends
within float tolerance of them (the short version of Benchmarks/reproducibility/torch.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "train_digits.py"
EPOCHS = 2  # 22 steps an epoch: 1440 training samples, global batch 64


def train(server, tmp_path: Path, nproc: int, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(SAMPLE),
               "--url", server.url, "--dataset", "digits", "--epochs", str(EPOCHS), "--deterministic",
               "--min-accuracy", "0", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_killed_and_resumed_ddp_run_ends_bitwise_equal(server, tmp_path):
    reference = train(server, tmp_path, 2, "--save-weights", str(tmp_path / "reference.bin"))
    assert reference.returncode == 0, reference.stdout + reference.stderr

    state = str(tmp_path / "state.pt")
    killed = train(server, tmp_path, 2, "--state", state, "--save-every", "4", "--kill-at-step", "30")
    assert killed.returncode != 0 and "SIGKILL after step 30" in killed.stdout, killed.stdout + killed.stderr
    resumed = train(server, tmp_path, 2, "--state", state, "--save-every", "4", "--save-weights",
                    str(tmp_path / "resumed.bin"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming at epoch 1 batch 6 (step 28)" in resumed.stdout, resumed.stdout
    assert (tmp_path / "resumed.bin").read_bytes() == (tmp_path / "reference.bin").read_bytes()

    single = train(server, tmp_path, 1, "--save-weights", str(tmp_path / "single.bin"))
    assert single.returncode == 0, single.stdout + single.stderr
    a, b = (np.fromfile(tmp_path / name, dtype="<f4") for name in ("reference.bin", "single.bin"))
    assert np.abs(a - b).max() <= 1e-4, "1 rank × 64 against 2 ranks × 32 over the same plan"
