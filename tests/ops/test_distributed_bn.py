"""DistributedBatchNorm2d: gloo processes spawned here (CPU) against one process's BatchNorm2d."""

from __future__ import annotations

import copy
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cnnlab.ops.cost import Cx, norm_cx
from cnnlab.ops.distributed_bn import (
    DistributedBatchNorm2d,
    combine_stats,
    distributed_batch_norm,
)

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="gloo backend unavailable"
)

# forkserver on Linux: children fork from a fresh server process that has imported torch and
# cnnlab once but never run autograd (plain fork breaks once this pytest worker has run a
# backward pass: autograd's threads do not survive fork; spawn re-imports torch per child).
START_METHOD = "forkserver" if sys.platform == "linux" else "spawn"
if START_METHOD == "forkserver":
    import multiprocessing

    multiprocessing.set_forkserver_preload(["torch", "cnnlab.ops.distributed_bn"])
C, H, W = 3, 4, 4
STEPS = 2  # two training steps: the momentum update and num_batches_tracked are exercised


@dataclass(frozen=True)
class Case:
    """One scenario run in every process: per-rank batch sizes and the layer's options."""

    name: str
    batches: tuple[int, ...]
    momentum: float | None = 0.1
    affine: bool = True
    dtype: torch.dtype = torch.float64
    group_ranks: tuple[int, ...] | None = None  # None: the world group

    @property
    def members(self) -> tuple[int, ...]:
        return self.group_ranks or tuple(range(len(self.batches)))


CASES = {
    2: [
        Case("equal", (4, 4)),
        Case("uneven", (3, 5)),
        Case("momentum_none", (2, 6), momentum=None),
        Case("no_affine", (3, 4), affine=False),
        Case("empty_rank", (0, 5)),
        Case("group_of_one", (3, 5), group_ranks=(1,)),  # plain BN on rank 1; rank 0 is outside
    ],
    3: [
        Case("equal", (2, 2, 2)),
        Case("uneven", (3, 5, 2)),
        Case("uneven_float32", (3, 5, 2), dtype=torch.float32),
        Case("empty_rank", (4, 0, 3)),
        Case("subgroup", (3, 9, 2), group_ranks=(0, 2)),  # rank 1 is outside the group
    ],
}


def case_data(case: Case, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch and the upstream gradient of one step (same on every process)."""
    g = torch.Generator().manual_seed(1000 * step + sum(map(ord, case.name)))
    n = sum(case.batches)
    x = torch.randn(n, C, H, W, generator=g, dtype=torch.float64) * 2.0 + 3.0  # mean far from 0
    dy = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    return x.to(case.dtype), dy.to(case.dtype)


def make_bn(case: Case, cls=nn.BatchNorm2d, **kw) -> nn.BatchNorm2d:
    """A layer with non-trivial parameters and running statistics, identical in every process."""
    bn = cls(C, momentum=case.momentum, affine=case.affine, **kw).to(case.dtype)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        if case.affine:
            bn.weight.copy_(torch.rand(C, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(C, generator=g))
        bn.running_mean.copy_(torch.randn(C, generator=g))
        bn.running_var.copy_(torch.rand(C, generator=g) + 0.5)
    return bn


def rows(case: Case, rank: int, t: torch.Tensor) -> torch.Tensor:
    """The rows of a global-batch tensor held by ``rank`` (processes hold them in rank order)."""
    start = sum(case.batches[:rank])
    return t[start : start + case.batches[rank]]


def concatenated(case: Case, t: torch.Tensor) -> torch.Tensor:
    """The batch of the whole group: its members' rows, concatenated."""
    return torch.cat([rows(case, r, t) for r in case.members])


def run_case(case: Case, rank: int) -> dict:
    """Train STEPS steps in this process; returns outputs, gradients and final state."""
    group = None
    if case.group_ranks is not None:
        group = dist.new_group(list(case.group_ranks))  # every process must call new_group
    bn = make_bn(case, DistributedBatchNorm2d, process_group=group)
    if rank not in case.members:
        try:
            bn(torch.randn(2, C, H, W, dtype=case.dtype))
        except ValueError as e:
            return {"error": str(e)}
        return {"error": None}
    out: dict = {"y": [], "dx": []}
    for step in range(STEPS):
        x_all, dy_all = case_data(case, step)
        x = rows(case, rank, x_all).clone().requires_grad_()
        y = bn(x)
        y.backward(rows(case, rank, dy_all))  # this process's loss: sum(y * dy) over its rows
        out["y"].append(y.detach())
        out["dx"].append(x.grad)
    if case.affine:  # summed over processes = the gradient of the summed loss
        for name in ("weight", "bias"):
            g = getattr(bn, name).grad.clone()
            dist.all_reduce(g, group=group)
            out[f"grad_{name}"] = g
    out["state"] = {k: v.clone() for k, v in bn.state_dict().items()}
    out["deepcopy_shares_group"] = copy.deepcopy(bn).process_group is group
    bn.eval()  # eval: running statistics, no communication
    x_all, _ = case_data(case, STEPS)
    out["eval_x"] = rows(case, rank, x_all)
    out["eval_y"] = bn(out["eval_x"]).detach()
    return out


def mismatched_channels(rank: int) -> str | None:
    """Each process builds a layer with a different channel count: every one must refuse."""
    bn = DistributedBatchNorm2d(C + rank)
    try:
        bn(torch.randn(2, C + rank, H, W))
    except ValueError as e:
        return str(e)
    return None


def worker(rank: int, world: int, store: str, out_dir: str) -> None:
    """Per-process entry point of torch.multiprocessing.spawn (module level: picklable)."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        results = {case.name: run_case(case, rank) for case in CASES[world]}
        results["mismatch"] = mismatched_channels(rank)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 3], ids=["2proc", "3proc"])
def spawned(request, tmp_path_factory) -> tuple[int, list[dict]]:
    """Run every case of CASES[world] in ``world`` gloo processes; their results, by rank."""
    world = request.param
    d = tmp_path_factory.mktemp(f"dbn{world}")
    args = (world, str(d / "store"), str(d))
    mp.start_processes(worker, args=args, nprocs=world, join=True, start_method=START_METHOD)
    return world, [torch.load(d / f"rank{r}.pt", weights_only=True) for r in range(world)]


def reference(case: Case) -> tuple[nn.BatchNorm2d, list[torch.Tensor], list[torch.Tensor]]:
    """One process's nn.BatchNorm2d trained on the concatenated batches of the same steps."""
    bn = make_bn(case)
    ys, dxs = [], []
    for step in range(STEPS):
        x_all, dy_all = case_data(case, step)
        x = concatenated(case, x_all).clone().requires_grad_()
        y = bn(x)
        y.backward(concatenated(case, dy_all))
        ys.append(y.detach())
        dxs.append(x.grad)
    return bn, ys, dxs


def per_member(case: Case, t: torch.Tensor) -> dict[int, torch.Tensor]:
    """Split a tensor over the concatenated batch back into each member's rows."""
    parts = torch.split(t, [case.batches[r] for r in case.members])
    return dict(zip(case.members, parts))


def tol(case: Case) -> dict:
    return {"rtol": 0.0, "atol": 1e-9 if case.dtype == torch.float64 else 1e-5}


def test_outputs_and_input_grads_equal_bn_over_concatenated_batch(spawned):
    world, results = spawned
    for case in CASES[world]:
        _, ys, dxs = reference(case)
        for step in range(STEPS):
            y_ref, dx_ref = per_member(case, ys[step]), per_member(case, dxs[step])
            for r in case.members:
                got = results[r][case.name]
                torch.testing.assert_close(got["y"][step], y_ref[r], **tol(case), msg=case.name)
                torch.testing.assert_close(got["dx"][step], dx_ref[r], **tol(case), msg=case.name)


def test_summed_parameter_grads_equal_bn_over_concatenated_batch(spawned):
    world, results = spawned
    for case in CASES[world]:
        if not case.affine:
            continue
        bn, _, _ = reference(case)
        for r in case.members:
            got = results[r][case.name]
            torch.testing.assert_close(got["grad_weight"], bn.weight.grad, **tol(case))
            torch.testing.assert_close(got["grad_bias"], bn.bias.grad, **tol(case))


def test_running_stats_equal_reference_and_identical_on_every_rank(spawned):
    world, results = spawned
    for case in CASES[world]:
        bn, _, _ = reference(case)
        first = results[case.members[0]][case.name]["state"]
        assert int(first["num_batches_tracked"]) == STEPS
        for name in ("running_mean", "running_var"):
            torch.testing.assert_close(first[name], getattr(bn, name), **tol(case))
        for r in case.members[1:]:  # bit-identical: every rank combines the same gathered rows
            state = results[r][case.name]["state"]
            assert all(torch.equal(state[k], first[k]) for k in first), (case.name, r)


def test_eval_uses_running_stats_without_communication(spawned):
    world, results = spawned
    for case in CASES[world]:
        for r in case.members:
            got = results[r][case.name]
            plain = make_bn(case)
            plain.load_state_dict(got["state"])
            assert torch.equal(got["eval_y"], plain.eval()(got["eval_x"]))


def test_copies_share_the_process_group(spawned):
    world, results = spawned
    for case in CASES[world]:
        for r in case.members:
            assert results[r][case.name]["deepcopy_shares_group"] is True


def test_rank_outside_the_group_is_refused(spawned):
    world, results = spawned
    outside = [(c, r) for c in CASES[world] for r in range(world) if r not in c.members]
    assert outside
    for case, r in outside:
        err = results[r][case.name]["error"]
        assert err is not None and f"global rank {r}" in err and "not a member" in err


def test_mismatched_channel_counts_are_refused_on_every_rank(spawned):
    world, results = spawned
    per_rank = ", ".join(f"rank {r}: {C + r}" for r in range(world))
    for r in range(world):
        msg = results[r]["mismatch"]
        assert msg is not None and "disagree on num_features" in msg and per_rank in msg


def train_two_steps(bn: nn.BatchNorm2d, case: Case) -> list[torch.Tensor]:
    """Outputs, input grads, parameter grads and state after two steps, then an eval output."""
    got = []
    for step in range(STEPS):
        x_all, dy_all = case_data(case, step)
        x = x_all.clone().requires_grad_()
        y = bn(x)
        y.backward(dy_all)
        got += [y, x.grad]
    got += [bn.weight.grad, bn.bias.grad, *bn.state_dict().values()]
    bn.eval()
    return [*got, bn(case_data(case, STEPS)[0])]


def assert_plain_batchnorm_exactly() -> None:
    case = Case("plain", (6,))
    ours = train_two_steps(make_bn(case, DistributedBatchNorm2d), case)
    ref = train_two_steps(make_bn(case), case)
    assert len(ours) == len(ref)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_no_process_group_is_batchnorm2d_exactly():
    assert not dist.is_initialized()
    assert_plain_batchnorm_exactly()


def test_world_size_one_is_batchnorm2d_exactly(tmp_path):
    assert not dist.is_initialized()
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        assert_plain_batchnorm_exactly()
    finally:
        dist.destroy_process_group()


def test_state_dicts_interchange_with_batchnorm2d():
    case = Case("state", (2,))
    plain, ours = make_bn(case), DistributedBatchNorm2d(C).double()
    ours.load_state_dict(plain.state_dict(), strict=True)
    back = nn.BatchNorm2d(C).double()
    back.load_state_dict(ours.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(plain.state_dict())
    assert all(
        torch.equal(a, b) for a, b in zip(back.state_dict().values(), plain.state_dict().values())
    )


@pytest.mark.parametrize(("affine", "channels_last"), [(True, False), (False, True)])
def test_gradcheck_of_the_autograd_function(affine, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, C, 2, 2, dtype=torch.float64).contiguous(memory_format=fmt)
    inputs = [x.requires_grad_()]
    if affine:
        inputs += [torch.rand(C, dtype=torch.float64) + 0.5, torch.randn(C, dtype=torch.float64)]
        inputs[1].requires_grad_(), inputs[2].requires_grad_()

    def fn(*args):
        return distributed_batch_norm(*args)[0]  # group=None: the same Function, one process

    assert torch.autograd.gradcheck(fn, tuple(inputs))


def test_function_returns_global_mean_and_unbiased_variance():
    x = torch.randn(5, C, 3, 3, dtype=torch.float64) * 3 + 1
    w, b = torch.rand(C, dtype=torch.float64), torch.randn(C, dtype=torch.float64)
    y, mean, var = distributed_batch_norm(x, w, b, eps=1e-3)
    torch.testing.assert_close(mean, x.mean((0, 2, 3)), rtol=0, atol=1e-12)
    torch.testing.assert_close(var, x.var((0, 2, 3), correction=1), rtol=0, atol=1e-12)
    ref = nn.functional.batch_norm(x, None, None, w, b, True, 0.0, 1e-3)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)


def test_chan_combination_equals_statistics_of_the_concatenation():
    parts = [torch.randn(n, 4, dtype=torch.float64) + 100 * i for i, n in enumerate((3, 0, 7, 1))]
    rows = []
    for p in parts:  # (count, mean, M2) per process; an empty process contributes zeros
        mean = p.mean(0) if len(p) else torch.zeros(4, dtype=torch.float64)
        m2 = ((p - mean) ** 2).sum(0)
        rows.append(torch.cat([torch.tensor([float(len(p))], dtype=torch.float64), mean, m2]))
    count, mean, var = combine_stats(torch.stack(rows))
    cat = torch.cat(parts)
    assert count.item() == 11
    torch.testing.assert_close(mean, cat.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(var, cat.var(0, correction=0), rtol=1e-12, atol=0)


def test_too_few_values_per_channel_is_refused():
    with pytest.raises(ValueError, match="more than 1 value per channel.*got 1"):
        distributed_batch_norm(torch.randn(1, C, 1, 1))


def test_complexity_is_batch_norm_cost():
    cx = Cx(8, 14, 14)
    assert DistributedBatchNorm2d.complexity(cx, 8) == norm_cx(cx)
    assert DistributedBatchNorm2d.complexity(cx, 8).params == sum(
        p.numel() for p in DistributedBatchNorm2d(8).parameters()
    )
    unfolded = DistributedBatchNorm2d.complexity(cx, 8, folded=False)
    assert unfolded.memory_access == 2 * 8 * 14 * 14 + 2 * 8
    with pytest.raises(ValueError, match="input has 8 channels, num_features=6"):
        DistributedBatchNorm2d.complexity(cx, 6)
