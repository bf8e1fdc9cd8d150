"""FractalNet: the expansion rule, the joins, local and global drop-path, closed-form params."""

import pytest
import torch

import cnnlab
from cnnlab.blocks.fractal import (
    DropPath,
    FractalBlock,
    ending_columns,
    local_keep,
    mean_join_cx,
)
from cnnlab.models import model_config
from cnnlab.models.fractalnet import PAPER_DROP_PATH
from cnnlab.ops.cost import Cx


def _block_params(c_in, c, columns):
    # C first convs read c_in, the other 2^C - 1 - C read c; every conv has a BN (2c)
    convs = 2**columns - 1
    return columns * 9 * c_in * c + (convs - columns) * 9 * c * c + convs * 2 * c


@pytest.mark.parametrize("columns", [1, 2, 3, 4])
def test_column_k_has_2_to_the_k_convs_and_the_deepest_2_to_the_c_minus_1(columns):
    block = FractalBlock(3, 8, columns)
    assert [len(col) for col in block.columns] == [2**k for k in range(columns)]
    assert len(block.columns[-1]) == 2 ** (columns - 1)
    params = sum(p.numel() for p in block.parameters())
    assert params == _block_params(3, 8, columns)


def test_joins_follow_the_expansion_rule():
    # C=4: join sizes along the deepest column: none, 2, none, 3, none, 2, none, 4 (Fig. 1)
    sizes = [len(ending_columns(4, u)) for u in range(1, 9)]
    assert sizes == [1, 2, 1, 3, 1, 2, 1, 4]
    assert ending_columns(4, 4) == [1, 2, 3]


def test_network_depth_is_b_times_2_to_the_c_minus_1():
    for name, depth in [("fractalnet_c3_cifar", 20), ("fractalnet_c4_cifar", 40)]:
        net = cnnlab.create_model(name)
        blocks = [m for m in net.features if isinstance(m, FractalBlock)]
        assert sum(len(b.columns[-1]) for b in blocks) == depth


def test_params_closed_form():
    # five blocks of widths 64..512 on 3 input channels, then a 100-class FC
    widths, c_in, total = (64, 128, 256, 512, 512), 3, 0
    for w in widths:
        total += _block_params(c_in, w, 3)
        c_in = w
    total += 512 * 100 + 100
    assert total == 33_770_788
    assert cnnlab.complexity("fractalnet_c3_cifar", num_classes=100).params == total


def test_eval_block_is_the_mean_of_its_columns():
    torch.manual_seed(0)
    block = FractalBlock(3, 4, 3, DropPath(0.5, 0.5)).eval()
    (g,), (e, f), (a, b, c, d) = (list(col) for col in block.columns)
    z = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        j1 = (e(z) + b(a(z))) / 2
        ref = (g(z) + f(j1) + d(c(j1))) / 3
        assert torch.allclose(block(z), ref, atol=1e-6)


def test_global_drop_path_runs_exactly_one_column():
    torch.manual_seed(0)
    drop = DropPath(0.15, 1.0)
    block = FractalBlock(3, 4, 3, drop).train()
    z = torch.randn(2, 3, 8, 8)
    for k in range(3):
        drop.set_column(k)
        assert torch.equal(block(z), block.columns[k](z))


def test_global_drop_path_picks_one_column_for_the_whole_network():
    torch.manual_seed(1)
    net = cnnlab.create_model(
        "fractalnet_c3_cifar", widths=(4, 8), global_ratio=1.0, num_classes=3
    ).train()
    x = torch.randn(2, 3, 8, 8)
    y = net(x)
    k = net.features.block1.drop.column
    assert k in (0, 1, 2)
    ref = net.features.pool1(net.features.block1.columns[k](x))
    ref = net.features.pool2(net.features.block2.columns[k](ref))
    assert torch.equal(y, net.forward_head(ref))


def test_local_drop_path_keeps_at_least_one_input():
    torch.manual_seed(0)
    assert all(sum(local_keep(n, 1.0)) == 1 for n in (2, 3, 4) for _ in range(20))
    assert local_keep(4, 0.0) == [True] * 4
    # p = 1 at C = 2: the block is exactly one of its two columns
    block = FractalBlock(3, 4, 2, DropPath(1.0, 0.0)).train()
    z = torch.randn(2, 3, 8, 8)
    y = block(z)
    assert any(torch.equal(y, col(z)) for col in block.columns)


def test_eval_uses_every_column_whatever_was_drawn():
    torch.manual_seed(0)
    net = cnnlab.create_model("fractalnet_c3_cifar", widths=(4, 8), num_classes=3).eval()
    x = torch.randn(1, 3, 8, 8)
    drop = net.features.block1.drop
    with torch.no_grad():
        drop.set_column(None)
        full = net(x)
        drop.set_column(0)
        assert torch.equal(net(x), full)
        assert drop.column == 0  # eval draws nothing


def test_drop_path_is_off_by_default_and_the_paper_regime_is_one_override():
    net = cnnlab.create_model("fractalnet_c3_cifar")
    assert (net.cfg.p_local, net.cfg.global_ratio) == (0.0, 0.0)
    drop = cnnlab.create_model("fractalnet_c3_cifar", **PAPER_DROP_PATH).features.block1.drop
    assert (drop.p_local, drop.global_ratio) == (0.15, 0.5)


def test_join_cost_is_n_minus_1_adds_and_a_scaling():
    cx = Cx(4, 8, 8)
    assert mean_join_cx(cx, 3).memory_access == (3 * 2 + 2) * 256
    assert mean_join_cx(cx, 1).memory_access == 0


@pytest.mark.parametrize(
    "override,message",
    [
        (dict(columns=0), "columns C must be >= 1, got 0"),
        (dict(widths=()), r"widths must be channel counts >= 1, got \(\)"),
        (dict(p_local=1.5), r"p_local must be in \[0, 1\], got 1.5"),
        (dict(global_ratio=-0.1), r"global_ratio must be in \[0, 1\], got -0.1"),
    ],
)
def test_bad_config_raises(override, message):
    with pytest.raises(ValueError, match=message):
        model_config("fractalnet_c4_cifar", **override)
