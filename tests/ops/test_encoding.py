"""EncNet's encoding layer, context encoding module and SE-loss against their formulas."""

import math

import pytest
import torch
from torch.func import functional_call
from torch.nn import functional as F

from cnnlab.counting.trace import traced_counts
from cnnlab.ops.cost import Cx
from cnnlab.ops.encoding import ContextEncoding, Encoding, class_presence, se_loss


def _loop_encoding(x, codewords, scale):
    """Zhang et al. 2018, the encoding layer one term at a time; s_k = -scale_k (the repo's storage)."""
    B, D = x.shape[:2]
    X = x.reshape(B, D, -1)
    K, N = codewords.shape[0], X.shape[2]
    out = torch.zeros(B, K, D, dtype=x.dtype)
    for b in range(B):
        for i in range(N):
            r = [X[b, :, i] - codewords[k] for k in range(K)]
            s = [-float(scale[k]) for k in range(K)]  # the paper's positive smoothing factors
            logits = [-s[k] * float(r[k] @ r[k]) for k in range(K)]
            z = sum(math.exp(v) for v in logits)
            for k in range(K):
                out[b, k] += math.exp(logits[k]) / z * r[k]
    return out


def test_encoding_equals_loop_formula():
    enc = Encoding(3, 4).double()
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    expected = _loop_encoding(x, enc.codewords.detach(), enc.scale.detach())
    torch.testing.assert_close(enc(x), expected, rtol=1e-10, atol=1e-12)


def test_encoding_initialisation_ranges():
    enc = Encoding(64, 32)
    bound = 1 / math.sqrt(32 * 64)
    assert enc.codewords.shape == (32, 64) and enc.scale.shape == (32,)
    assert enc.codewords.abs().max() <= bound and enc.codewords.abs().max() > 0.9 * bound
    assert (enc.scale <= 0).all() and (enc.scale >= -1).all()


def test_encoding_gradcheck_float64():
    enc = Encoding(3, 4).double()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    C = enc.codewords.detach().clone().requires_grad_()
    s = enc.scale.detach().clone().requires_grad_()

    def f(x, C, s):
        return functional_call(enc, {"codewords": C, "scale": s}, (x,))

    assert torch.autograd.gradcheck(f, (x, C, s))


def test_encoding_refuses_wrong_width():
    with pytest.raises(ValueError, match=r"expected D=8 channels, got input \(1, 6, 4, 4\)"):
        Encoding(8, 4)(torch.zeros(1, 6, 4, 4))
    with pytest.raises(ValueError, match="got D=0, K=4"):
        Encoding(0, 4)


def test_context_encoding_shapes_and_formula():
    m = ContextEncoding(16, K=8, num_classes=5).eval()
    x = torch.randn(2, 16, 6, 5)
    out, se_logits = m.forward_se(x)
    assert out.shape == x.shape and se_logits.shape == (2, 5)
    torch.testing.assert_close(m(x), out)
    # EncNet: e = mean_K relu(BN_K(Encoding(conv(x)))); gamma = sigmoid(FC e); relu(x + x * gamma)
    with torch.no_grad():
        e = torch.relu(m.bn(m.encoding(m.conv(x)))).mean(1)
        gamma = torch.sigmoid(e @ m.fc.weight.T + m.fc.bias)[:, :, None, None]
        torch.testing.assert_close(out, torch.relu(x + x * gamma))
        torch.testing.assert_close(se_logits, e @ m.se_head.weight.T + m.se_head.bias)


def test_context_encoding_without_se_head():
    m = ContextEncoding(8, K=4)
    assert m.se_head is None
    with pytest.raises(ValueError, match="num_classes=0, it has no SE-loss head"):
        m.forward_se(torch.zeros(2, 8, 4, 4))


@pytest.mark.parametrize("num_classes", [0, 7])
def test_context_encoding_analytic_equals_traced(num_classes):
    size = (16, 6, 5)
    m = ContextEncoding(16, K=8, num_classes=num_classes)
    cx = ContextEncoding.complexity(Cx(*size), 16, K=8, num_classes=num_classes)
    traced = traced_counts(m, size)
    assert cx.shape == size
    assert cx.params == traced.params == sum(p.numel() for p in m.parameters())
    assert (cx.macs, cx.activations, cx.memory_access) == (
        traced.macs,
        traced.activations,
        traced.memory_access,
    )


def test_encoding_analytic_equals_traced():
    D, K, size = 6, 4, (6, 5, 3)
    cx = Encoding.complexity(Cx(*size), D, K)
    traced = traced_counts(Encoding(D, K), size)
    assert cx.shape == (K, D, 1)
    assert cx.macs == traced.macs == 2 * K * D * 15  # D.x_i for every (i, k), then A^T X
    assert (cx.params, cx.memory_access) == (traced.params, traced.memory_access)


def test_class_presence_from_label_map():
    target = torch.tensor(
        [
            [[0, 0, 255], [2, 2, 2]],  # classes 0 and 2; 255 is the ignore index
            [[1, 1, 1], [1, 7, -1]],  # class 1; 7 and -1 are outside [0, 4)
        ]
    )
    expected = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    assert torch.equal(class_presence(target, 4), expected)


def test_se_loss_is_bce_on_presence():
    target = torch.tensor([[[0, 3], [3, 255]], [[1, 1], [1, 1]]])
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [-2.0, 1.0, 0.0, -0.5]])
    presence = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    p = torch.sigmoid(logits)
    by_hand = -(presence * p.log() + (1 - presence) * (1 - p).log()).mean()
    torch.testing.assert_close(se_loss(logits, target, 4), by_hand)
    torch.testing.assert_close(se_loss(logits, target, 4), F.binary_cross_entropy(p, presence))


def test_se_loss_refuses_mismatched_logits():
    with pytest.raises(
        ValueError, match=r"must be \(batch, num_classes\) = \(2, 4\), got \(2, 5\)"
    ):
        se_loss(torch.zeros(2, 5), torch.zeros(2, 3, 3, dtype=torch.long), 4)
