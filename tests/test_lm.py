"""The entropy-coding LM (encodec_np.format.lm); its coder is tests/test_arithmetic.py's.

Without torch: LM encode → decode round trips on random NumPy weights,
truncated/corrupt streams, loading errors. With torch (``@requires_torch``):
our LM matches the official ``LMModel`` step by step, and a segment coded by
the official tool is measured against our decoder.

Run ``pytest -s tests/test_lm.py`` to see the measured numbers.
"""
import functools
import io
import os
import tempfile

import numpy as np
import pytest
from coding import our_encode
from conftest import requires_torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from encodec_np.errors import CheckpointError, EncodecError
from encodec_np.format.arithmetic import ArithmeticDecoder, build_stable_quantized_cdf
from encodec_np.format.lm import LMModel, decode_codes, encode_codes, lm_name_for, load_lm

# --------------------------------------------------------------------------- helpers








def random_lm_state(n_q=32, card=1024, dim=200, layers=5, hidden=800, seed=0,
                    head_scale=1.0, head_bias=0.1):
    """A random official-layout LM state dict (NumPy only)."""
    rng = np.random.default_rng(seed)
    f = lambda *shape, s=1.0: (s * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    state = {f"emb.{k}.weight": f(card + 1, dim) for k in range(n_q)}
    state["transformer.norm_in.weight"] = 1 + f(dim, s=0.1)
    state["transformer.norm_in.bias"] = f(dim, s=0.1)
    for i in range(layers):
        p = f"transformer.layers.{i}."
        state |= {p + "self_attn.in_proj_weight": f(3 * dim, dim, s=dim ** -0.5),
                  p + "self_attn.in_proj_bias": f(3 * dim, s=0.1),
                  p + "self_attn.out_proj.weight": f(dim, dim, s=dim ** -0.5),
                  p + "self_attn.out_proj.bias": f(dim, s=0.1),
                  p + "linear1.weight": f(hidden, dim, s=dim ** -0.5), p + "linear1.bias": f(hidden, s=0.1),
                  p + "linear2.weight": f(dim, hidden, s=hidden ** -0.5), p + "linear2.bias": f(dim, s=0.1),
                  p + "norm1.weight": 1 + f(dim, s=0.1), p + "norm1.bias": f(dim, s=0.1),
                  p + "norm2.weight": 1 + f(dim, s=0.1), p + "norm2.bias": f(dim, s=0.1)}
    for k in range(n_q):
        state[f"linears.{k}.weight"] = f(card, dim, s=head_scale * dim ** -0.5)
        state[f"linears.{k}.bias"] = f(card, s=head_bias)
    return state


@functools.lru_cache(maxsize=None)
def numpy_lm(kind="flat", n_q=32):
    """Our LM on random weights. 'flat': near-uniform predictions; 'peaked': a few likely codes."""
    if kind == "peaked":
        return LMModel.from_state(random_lm_state(n_q, seed=1, head_scale=0.3, head_bias=4.0))
    return LMModel.from_state(random_lm_state(n_q, seed=0))


def sample_codes_from_bias(lm, K, T, seed):
    """Codes drawn from softmax(head bias): what a 'peaked' LM with weak context predicts well."""
    rng = np.random.default_rng(seed)
    codes = np.empty((K, T), np.int64)
    for k in range(K):
        p = np.exp(lm.head_b[k].astype(np.float64) - lm.head_b[k].max())
        codes[k] = rng.choice(lm.card, size=T, p=p / p.sum())
    return codes












# --------------------------------------------------------------------------- coder vs official


# --------------------------------------------------------------------------- LM vs official
def official_lm(n_q, frame_rate, seed=0, peaked=False):
    """Meta's LMModel with seeded random weights, perturbed so that every parameter matters."""
    import torch
    from oracle import import_encodec
    import_encodec()
    from encodec.model import LMModel as TorchLM

    torch.manual_seed(seed)
    lm = TorchLM(n_q, 1024, num_layers=5, dim=200, past_context=int(3.5 * frame_rate))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if name.endswith("bias"):  # in_proj/out_proj biases start at zero
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name:       # LayerNorm weights start at one
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            if name.startswith("linears."):
                if peaked and name.endswith("bias"):
                    p.copy_(4 * torch.randn(p.shape, generator=gen))
                elif name.endswith("weight"):
                    p.mul_(1.0 if peaked else 3.0)
    return lm.eval()


def save_and_load(lm):
    import torch
    path = os.path.join(tempfile.mkdtemp(), "lm.th")
    torch.save(lm.state_dict(), path)
    return load_lm(path)


def official_cdfs(probas_t):
    """Official CDFs of official probabilities [1, card, K, 1] → [K, card] int64."""
    from encodec.quantization import ac
    return np.stack([ac.build_stable_quantized_cdf(probas_t[0, :, k, 0], 24, check=False).numpy()
                     for k in range(probas_t.shape[2])])


# Measured (torch 2.13 CPU vs NumPy 2.4 einsum / float64 softmax; perturbed random
# weights): max |Δp| = 5.8e-7 (32 codebooks, 300 steps), 4.5e-7 (8 of 32, 40 steps),
# 7.2e-7 (16 codebooks, 120 steps; 5.8e-7 over 560). The tolerance 5e-6 leaves ~7x
# room. Identical integer CDFs: 0 of 9600 / 320 / 1920 (see the README).
PROBA_TOL = 5e-6


@requires_torch
@pytest.mark.oracle
@pytest.mark.parametrize("n_q,frame_rate,K,steps", [
    # 300 > past_context = 262: the oldest memory entries (the initial zero first) drop out.
    pytest.param(32, 75, 32, 300, marks=pytest.mark.slow),
    (32, 75, 8, 40),
    (16, 150, 16, 120),   # past_context 525; the official step costs ~0.1 s here
])
@pytest.mark.slow
def test_lm_step_matches_official(n_q, frame_rate, K, steps):
    import torch
    theirs = official_lm(n_q, frame_rate)
    ours = save_and_load(theirs)
    assert (ours.n_q, ours.card, ours.past_context) == (n_q, 1024, int(3.5 * frame_rate))
    codes = np.random.default_rng(1).integers(0, 1024, (K, steps))
    state, prev = ours.initial_state(K), None
    t_states, offset, t_in = None, 0, torch.zeros(1, K, 1, dtype=torch.long)
    max_diff, same_cdf = 0.0, 0
    for t in range(steps):
        with torch.no_grad():
            t_probas, t_states, offset = theirs(t_in, t_states, offset)
        probas, state = ours.step(prev, state)
        ref = t_probas[0, :, :, 0].numpy().T
        max_diff = max(max_diff, float(np.abs(probas - ref).max()))
        same_cdf += int((build_stable_quantized_cdf(probas) == official_cdfs(t_probas)).all(axis=1).sum())
        prev = codes[:, t]
        t_in = torch.from_numpy(1 + codes[None, :, t:t + 1])
    print(f"\nLM parity n_q={n_q} fr={frame_rate} K={K} steps={steps}: max |dp| = {max_diff:.3g}, "
          f"identical integer CDFs: {same_cdf}/{K * steps} = {same_cdf / (K * steps):.3f}")
    assert max_diff < PROBA_TOL


@pytest.mark.slow
@requires_torch
@pytest.mark.oracle
def test_lm_forward_matches_official():
    """Our official-style forward (any T, masks, layer-input states) against theirs."""
    import torch
    theirs = official_lm(32, 75, seed=2)
    ours = save_and_load(theirs)
    idx = np.random.default_rng(2).integers(0, 1025, (2, 32, 300))
    with torch.no_grad():
        t_p1, t_s1, t_o1 = theirs(torch.from_numpy(idx[..., :280]), None, 0)
        t_p2, t_s2, t_o2 = theirs(torch.from_numpy(idx[..., 280:]), t_s1, t_o1)
    p1, s1, o1 = ours.forward(idx[..., :280])
    p2, s2, o2 = ours.forward(idx[..., 280:], s1, o1)
    assert (o1, o2) == (t_o1, t_o2) == (280, 300)
    for a, b in ((p1, t_p1), (p2, t_p2)):
        assert a.shape == tuple(b.shape)
        assert np.abs(a - b.numpy()).max() < PROBA_TOL
    for a, b in zip(s2, t_s2):
        assert a.shape == tuple(b.shape) == (2, 262, 200)
        assert np.abs(a - b.numpy()).max() < 1e-4


@pytest.mark.slow
@requires_torch
@pytest.mark.oracle
@pytest.mark.parametrize("peaked", [False, True])
def test_official_segment_with_our_decoder(peaked):
    """A segment coded by Meta's coder and LM.

    Guaranteed (asserted): with Meta's own CDFs our decoder returns the codes,
    and our coder reproduces Meta's bytes. Not guaranteed (measured, reported):
    whether our LM reproduces every integer CDF, which full decoding needs.
    """
    import torch
    from encodec.quantization import ac
    theirs = official_lm(32, 75, seed=3, peaked=peaked)
    ours = save_and_load(theirs)
    K, T = 16, 120
    if peaked:
        codes = sample_codes_from_bias(ours, K, T, seed=3)
    else:
        codes = np.random.default_rng(3).integers(0, 1024, (K, T))
    fo = io.BytesIO()
    coder = ac.ArithmeticCoder(fo)
    states, offset, t_in, cdfs = None, 0, torch.zeros(1, K, 1, dtype=torch.long), []
    for t in range(T):
        with torch.no_grad():
            probas, states, offset = theirs(t_in, states, offset)
        t_in = 1 + torch.from_numpy(codes[None, :, t:t + 1])
        for k in range(K):
            cdf = ac.build_stable_quantized_cdf(probas[0, :, k, 0], 24, check=False)
            coder.push(int(codes[k, t]), cdf)
            cdfs.append(cdf.numpy())
    coder.flush()
    payload = fo.getvalue()

    decoder = ArithmeticDecoder(io.BytesIO(payload))
    assert np.array_equal(np.array([decoder.pull(c) for c in cdfs]).reshape(T, K).T, codes)
    assert our_encode(cdfs, codes.T.reshape(-1)) == payload

    # Our own LM's CDFs on the same codes: how many are identical to Meta's?
    state, prev, same = ours.initial_state(K), None, 0
    for t in range(T):
        probas, state = ours.step(prev, state)
        mine = build_stable_quantized_cdf(probas)
        same += int(sum(np.array_equal(mine[k], cdfs[t * K + k]) for k in range(K)))
        prev = codes[:, t]
    try:
        decoded = decode_codes(io.BytesIO(payload), ours, K, T)
        outcome = "decoded exactly" if np.array_equal(decoded, codes) else \
            f"wrong codes from frame {int(np.argmax((decoded != codes).any(axis=0)))}"
    except EncodecError as exc:
        outcome = f"EncodecError ({exc})"
    print(f"\nMeta-coded segment ({'peaked' if peaked else 'flat'} LM, {8 * len(payload) / codes.size:.2f} "
          f"bits/code): identical CDFs {same}/{K * T} = {same / (K * T):.3f}; our full decode: {outcome}")
    if same == K * T:
        assert outcome == "decoded exactly"


# --------------------------------------------------------------------------- LM, no torch
def test_deterministic_math_helpers():
    from encodec_np.format.lm import _exp, _sincos
    rng = np.random.default_rng(9)
    x = np.concatenate([-rng.random(5000) * 60, [0.0, -0.3466, -1e-9, -699.0]])
    assert np.abs(_exp(x) / np.exp(x) - 1).max() < 1e-12
    assert _exp(np.array([-np.inf]))[0] < 1e-300
    phase = np.concatenate([rng.random(5000) * 5e4, np.arange(200.0), -rng.random(100)])
    sin, cos = _sincos(phase)
    assert np.abs(sin - np.sin(phase)).max() < 1e-13 and np.abs(cos - np.cos(phase)).max() < 1e-13


@pytest.mark.slow
def test_step_ignores_blas_threads(tmp_path):
    """Step probabilities are the same bits whatever BLAS thread count a process runs with."""
    import subprocess
    import sys
    script = (
        "import sys, numpy as np; sys.path.insert(0, %r)\n"
        "from test_lm import random_lm_state\n"
        "from encodec_np.format.lm import LMModel\n"
        "lm = LMModel.from_state(random_lm_state(8, seed=12), frame_rate=10)\n"
        "codes = np.random.default_rng(12).integers(0, 1024, (8, 40))\n"
        "s, prev, out = lm.initial_state(), None, []\n"
        "for t in range(40):\n"
        "    p, s = lm.step(prev, s); out.append(p); prev = codes[:, t]\n"
        "np.save(sys.argv[1], np.stack(out))\n") % os.path.dirname(__file__)
    results = []
    for threads in ("1", "3"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads)
        out = tmp_path / f"p{threads}.npy"
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=300)
        results.append(np.load(out))
    assert np.array_equal(results[0], results[1])


def test_step_matches_forward():
    """The cached-key/value streaming step equals the official-style forward (window included)."""
    lm = LMModel.from_state(random_lm_state(8, seed=4), frame_rate=20)   # past_context 70
    codes = np.random.default_rng(4).integers(0, 1024, (8, 100))
    state, prev, stepped = lm.initial_state(), None, []
    for t in range(100):
        probas, state = lm.step(prev, state)
        stepped.append(probas)
        prev = codes[:, t]
    idx = np.concatenate([np.zeros((8, 1), np.int64), 1 + codes[:, :99]], axis=1)[None]
    full, states, offset = lm.forward(idx)
    assert offset == 100 and states[0].shape == (1, 70, 200)
    assert np.abs(np.stack(stepped, axis=-1) - full[0].transpose(1, 0, 2)).max() < 1e-6


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(K=st.integers(4, 32), T=st.integers(1, 50), seed=st.integers(0, 2 ** 32 - 1),
       kind=st.sampled_from(["flat", "peaked"]))
@pytest.mark.slow
@example(K=32, T=50, seed=0, kind="flat")
def test_encode_decode_round_trip(K, T, seed, kind):
    lm = numpy_lm(kind)
    if kind == "peaked":
        codes = sample_codes_from_bias(lm, K, T, seed)
    else:
        codes = np.random.default_rng(seed).integers(0, 1024, (K, T))
    fo = io.BytesIO()
    n = encode_codes(codes, lm, fo)
    payload = fo.getvalue()
    assert n == len(payload)
    fo = io.BytesIO(payload + b"\x00\xffrest of file")
    decoded = decode_codes(fo, lm, K, T)
    assert decoded.dtype == np.int64 and np.array_equal(decoded, codes)
    assert fo.tell() == len(payload)


def test_peaked_lm_compresses():
    lm = numpy_lm("peaked")
    K, T = 32, 75
    codes = sample_codes_from_bias(lm, K, T, seed=5)
    fo = io.BytesIO()
    encode_codes(codes, lm, fo)
    bits_per_code = 8 * len(fo.getvalue()) / codes.size
    # Entropy of the codes' own distribution, for reference.
    p = np.exp(lm.head_b[:K].astype(np.float64) - lm.head_b[:K].max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    entropy = float(-(p * np.log2(np.maximum(p, 1e-300))).sum(axis=1).mean())
    print(f"\npeaked random LM: {bits_per_code:.2f} bits/code (raw 10, source entropy {entropy:.2f}), "
          f"ratio {10 / bits_per_code:.2f}x")
    assert bits_per_code < 10
    assert np.array_equal(decode_codes(io.BytesIO(fo.getvalue()), lm, K, T), codes)


def test_empty_and_one_frame_segments():
    lm = numpy_lm()
    fo = io.BytesIO()
    assert encode_codes(np.zeros((4, 0), np.int64), lm, fo) == 0 and fo.getvalue() == b""
    assert decode_codes(io.BytesIO(b""), lm, 4, 0).shape == (4, 0)
    encode_codes(np.array([[1], [2], [3], [1023]]), lm, fo)
    assert decode_codes(io.BytesIO(fo.getvalue()), lm, 4, 1).tolist() == [[1], [2], [3], [1023]]


# --------------------------------------------------------------------------- broken streams
@functools.lru_cache(maxsize=None)
def reference_payload():
    lm = numpy_lm()
    codes = np.random.default_rng(6).integers(0, 1024, (8, 12))
    fo = io.BytesIO()
    encode_codes(codes, lm, fo)
    return codes, fo.getvalue()


@pytest.mark.parametrize("cut", [1, 2, 7, "all"])
def test_truncated_stream_raises(cut):
    codes, payload = reference_payload()
    data = b"" if cut == "all" else payload[:-cut]
    with pytest.raises(EncodecError, match="ended sooner"):
        decode_codes(io.BytesIO(data), numpy_lm(), *codes.shape)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_corrupt_stream_raises_or_returns_codes(data):
    """Corruption is not always detectable, but it never hangs or returns a wrong shape."""
    codes, payload = reference_payload()
    raw = bytearray(payload)
    for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4)):
        raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        out = decode_codes(io.BytesIO(bytes(raw)), numpy_lm(), *codes.shape)
    except EncodecError:
        return
    assert out.shape == codes.shape and out.min() >= 0 and out.max() < 1024


def test_garbage_bits_fit_no_symbol():
    """A CDF total below 2**24 leaves the top of the range to no symbol: all-one bits land there."""
    cdf = build_stable_quantized_cdf(np.full(3, 1 / 3, np.float32))
    assert cdf[-1] < 2 ** 24
    decoder = ArithmeticDecoder(io.BytesIO(b"\xff" * 8))
    with pytest.raises(EncodecError, match="fit no symbol"):
        decoder.pull(cdf)


# --------------------------------------------------------------------------- API edges
def test_lm_name_for():
    assert lm_name_for("encodec_24khz") == "encodec_lm_24khz"
    assert lm_name_for("encodec_48khz") == "encodec_lm_48khz"
    with pytest.raises(EncodecError, match="no entropy-coding LM"):
        lm_name_for("encodec_32khz")


def test_loading_errors(tmp_path):
    with pytest.raises(EncodecError, match="no LM checkpoint"):
        load_lm(tmp_path / "missing.th")
    state = random_lm_state(8, layers=1, seed=7)
    with pytest.raises(EncodecError, match="frame rate"):
        LMModel.from_state(state)
    assert LMModel.from_state(state, frame_rate=50).past_context == 175
    with pytest.raises(CheckpointError, match="expected n_q=4"):
        LMModel.from_state(state, n_q=4, frame_rate=50)
    with pytest.raises(CheckpointError, match="not an EnCodec LM"):
        LMModel.from_state({"encoder.model.0.conv.conv.weight": np.zeros((32, 1, 7), np.float32)})
    bad = dict(state)
    del bad["linears.3.bias"]
    with pytest.raises(CheckpointError, match="linears.3.bias"):
        LMModel.from_state(bad, frame_rate=50)


def test_input_validation():
    lm = numpy_lm()
    with pytest.raises(EncodecError):
        encode_codes(np.full((4, 3), 1024), lm, io.BytesIO())
    with pytest.raises(EncodecError):
        encode_codes(np.zeros((33, 3), np.int64), lm, io.BytesIO())
    with pytest.raises(EncodecError):
        encode_codes(np.zeros((4, 3), np.float32), lm, io.BytesIO())
    state = lm.initial_state(4)
    with pytest.raises(EncodecError):
        lm.step(np.zeros(5, np.int64), state)
    with pytest.raises(EncodecError):
        lm.initial_state(0)


def test_load_lm_reads_th(tmp_path):
    """load_lm on a .th written without torch (tests/th_writer.py) equals from_state."""
    import th_writer
    state = random_lm_state(16, layers=2, seed=8)
    path = tmp_path / "lm.th"
    th_writer.write_th(path, state)
    lm = load_lm(path)
    assert (lm.n_q, lm.past_context, lm.num_layers) == (16, 525, 2)
    ref = LMModel.from_state(state)
    a, _ = lm.step(None, lm.initial_state())
    b, _ = ref.step(None, ref.initial_state())
    assert np.array_equal(a, b)
