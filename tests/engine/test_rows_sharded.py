"""Row rules under FSDP1 and FSDP2, with the real wrappers on a one-rank gloo group in a
child process (docs/spec.md#rows rule 11): refused at apply, the model untouched; FSDP2
applied after the policy: the next optimizer step raises."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

CHILD = textwrap.dedent(
    """
    import json, os, sys, warnings
    import torch, torch.distributed as dist
    import tlrules
    from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard
    from tests.engine.test_rows_decide import NEW_TOKENS, TinyLM, policy

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
    dist.init_process_group("gloo", rank=0, world_size=1)
    out = {}
    fsdp2 = TinyLM()
    fully_shard(fsdp2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FSDP1's own deprecation notice
        fsdp1 = FullyShardedDataParallel(
            TinyLM(), device_id=torch.device("cpu"), use_orig_params=True
        )
    for kind, model in (("fsdp2", fsdp2), ("fsdp1", fsdp1)):
        try:
            policy(NEW_TOKENS).apply(model)
            out[kind] = "applied"
        except tlrules.DecisionError as err:
            flags = [p.requires_grad for p in model.parameters()]
            out[kind] = [str(err), all(flags)]
    later = TinyLM()  # applied first, sharded after: the next step refuses
    policy(NEW_TOKENS).apply(later)
    fully_shard(later)
    optimizer = torch.optim.AdamW(later.parameters(), lr=1e-2, weight_decay=0.1)
    later(torch.tensor([[1, 950]])).sum().backward()
    try:
        optimizer.step()
        out["later"] = "stepped"
    except RuntimeError as err:
        out["later"] = str(err)
    dist.destroy_process_group()
    print(json.dumps(out))
    """
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow  # a child process that imports torch.distributed
def test_fsdp1_and_fsdp2_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(_port())],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    head = "p.yaml:3:5: rule 1: 'model.embed_tokens.weight' trains in part (rows 900-1023 train"
    fsdp2, untouched2 = out["fsdp2"]
    assert fsdp2.startswith(head) and "the tensor is a DTensor (FSDP2 fully_shard" in fsdp2
    fsdp1, untouched1 = out["fsdp1"]
    assert fsdp1.startswith(head) and "the model holds FSDP units" in fsdp1
    assert untouched1 and untouched2  # every requires_grad as it was
    assert out["later"].startswith(
        "tlrules: the frozen rows of 'model.embed_tokens.weight' can no longer be kept exact: "
    )
