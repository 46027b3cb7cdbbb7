"""Train the small causal 24 kHz codec (``encodec_np_small_24khz``) on 2 CPU cores.

Resumable: ``RUN/checkpoint.pt`` holds model, optimizer, step and RNG states
and is rewritten atomically every ``--save-every`` steps and on exit (also on
SIGTERM / Ctrl-C); ``RUN/log.csv`` gets one line per step. Re-running the
same command continues where it stopped. Example::

    python training/train.py --run training/runs/small --minutes 90

The first ``--warmup-steps`` train the encoder and decoder as a plain
auto-encoder; the RVQ's k-means then initialises on informative embeddings.
Losses (paper §3.4): by default no adversarial term,
``10 * L1(time) + 1.0 * multi-scale mel + 1.0 * commitment`` (see LAMBDA_T; ``--lambda-t``
and ``--mel-floor`` change the L1 weight and the mel loss's log floor), plus
``--loudness`` times the level error in dB (:func:`loudness_loss`), ``--envelope`` times
the STOI-like envelope term (``losses.EnvelopeLoss``), ``--stft`` times the linear-frequency
multi-resolution STFT term (``losses.STFTLoss``), ``--band-level`` times the error in dB of
each mel band's level over the crop (``losses.BandLevelLoss``) and ``--noise-floor`` times the
decoded hiss in bins the input leaves below the mel floor (``losses.NoiseFloorLoss``) and ``--si-snr``
times minus the SI-SNR in dB (``losses.SISNRLoss``), all off by default.
With ``--adversarial``, the paper's full objective: the multi-scale STFT
discriminator (``discriminator.py``, updated with probability 2/3 a step),
its adversarial and feature-matching losses and the two reconstruction losses
through the loss balancer (``--weights``: shares of L1, mel, adversarial,
feature matching; the paper's 0.1, 1, 3, 3), commitment loss added as is. Quantizer
dropout: every step draws a bandwidth from the model's targets, so one model
serves them all. The RVQ is Meta's own: k-means init on the first batch, EMA
codebook updates, dead codes replaced by batch vectors. ``--decoder-only`` (with
``--init``) freezes the encoder and the codebooks, so the codes of every input, and every
``.ecdc`` file already written, stay those of the starting weights; only the decoder learns.
"""
from __future__ import annotations

import argparse
import csv
import os
import signal
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import DEFAULT_ROOT, Crops  # noqa: E402
from discriminator import MultiScaleSTFTDiscriminator, discriminator_loss, generator_losses  # noqa: E402
from losses import FLOOR, Balancer, BandLevelLoss, EnvelopeLoss, MelLoss, NoiseFloorLoss, SISNRLoss, STFTLoss  # noqa: E402
from torch_model import build_torch_model, signal_preserving_init  # noqa: E402

from encodec_np.config import encodec_np_small_24khz  # noqa: E402

# The paper weights the time-domain L1 by 0.1, with adversarial losses doing much of the work.
# Without them, and with minutes instead of days of compute, a strong waveform term is what
# gets the auto-encoder started: on a fixed batch, 0.1 * L1 + mel stays near silence for
# 60 steps at any learning rate, 10 * L1 + mel reaches correlation 0.99 in 90 (measured).
LAMBDA_T, LAMBDA_F, LAMBDA_W = 10.0, 1.0, 1.0
# The optional weights of the plain objective (argparse names), which --adversarial replaces by --weights.
PLAIN_TERMS = ("loudness", "envelope", "stft", "band_level", "noise_floor", "si_snr")


class Adversary:
    """The discriminator, its optimizer and the balancer of an adversarial run."""

    def __init__(self, weights: dict[str, float], lr: float, device, filters: int = 32,
                 p_update: float = 2 / 3, seed: int = 0):
        self.disc = MultiScaleSTFTDiscriminator(filters=filters).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.9))
        self.balancer = Balancer(weights)
        self.p_update = p_update
        self.rng = np.random.default_rng(seed + 1)

    def state_dict(self) -> dict:
        return {"disc": self.disc.state_dict(), "opt": self.opt.state_dict(),
                "balancer": self.balancer.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.disc.load_state_dict(state["disc"])
        self.opt.load_state_dict(state["opt"])
        self.balancer.load_state_dict(state["balancer"])
        self.rng.bit_generator.state = state["rng"]


def save(path: Path, model, opt, step: int, elapsed: float, crops: Crops, adversary: Adversary | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
             "torch_rng": torch.get_rng_state(), "np_rng": crops.rng.bit_generator.state}
    if adversary is not None:
        state["adversary"] = adversary.state_dict()
    torch.save(state, tmp)
    os.replace(tmp, path)


def initial_state(path) -> dict:
    """The official state dict to start a new run from.

    ``path`` is another run's ``checkpoint.pt`` (its model, EMA statistics
    included; the optimizer starts afresh) or encodec-np weights. Those carry no
    EMA statistics: each code gets a cluster size of 2 (the dead-code threshold)
    and the matching ``embed_avg``, so the first EMA update neither rescales nor
    expires the codes.
    """
    from encodec_np.io.checkpoint import read_checkpoint, to_official_state

    if Path(path).suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    config, params = read_checkpoint(path)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in to_official_state(params, config).items()}
    for key in [k for k in state if k.endswith("._codebook.cluster_size")]:
        prefix = key[:-len("cluster_size")]
        state[key] = torch.full_like(state[key], 2.0)
        state[prefix + "embed_avg"] = 2.0 * state[prefix + "embed"]
    return state


def freeze_codes(model) -> None:
    """Train the decoder alone: the encoder's weights and the quantizer's codebooks stay as they are.

    Both leave autograd, and both stay in eval mode whatever ``model.train()`` is
    called with later, since in training mode the RVQ moves its codebooks by EMA
    and replaces dead codes, which would change the codes without a gradient.
    """
    for part in (model.encoder, model.quantizer):
        part.requires_grad_(False)
        part.train = types.MethodType(lambda self, mode=True: torch.nn.Module.train(self, False), part)
        part.train()


def loudness_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean absolute loudness error in dB: ``|20 log10(rms(y) / rms(x))|`` per crop.

    The mel terms weigh every bin alike, so a decoder that is uniformly a few dB
    quiet costs little there; this term prices the level itself (the held-out
    table of the shipped model: -1.4 dB on average at 6 kbps, -10.7 dB on one clip).
    """
    eps = 1e-5
    rms_y = (y.pow(2).mean(dim=-1) + eps).sqrt()
    rms_x = (x.pow(2).mean(dim=-1) + eps).sqrt()
    return (20 * torch.log10(rms_y / rms_x)).abs().mean()


def reconstruct(model, x: torch.Tensor, bandwidth: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded ``x [B, 1, T]`` and the commitment loss; ``bandwidth=None`` bypasses the quantizer."""
    emb = model.encoder(x)
    if bandwidth is None:
        quantized, l_w = emb, torch.zeros((), device=x.device)
    else:
        q = model.quantizer(emb, model.frame_rate, bandwidth)
        quantized, l_w = q.quantized, q.penalty.mean()
    return model.decoder(quantized)[..., :x.shape[-1]], l_w


def train_step(model, mel_loss, opt, x: torch.Tensor, bandwidth: float | None, lambda_l: float = 0.0,
               lambda_t: float = LAMBDA_T, terms: dict[str, tuple[torch.nn.Module, float]] | None = None) -> dict:
    """One optimizer step; ``bandwidth=None`` bypasses the quantizer (auto-encoder warm-up).

    ``terms`` adds optional losses by name, each ``(loss(y, x), weight)`` (the envelope term
    ``"env"``, the linear STFT term ``"stft"``, the band-level term ``"band_db"``, the noise-floor term ``"hiss"``, minus the
    SI-SNR ``"neg_si_snr"``), reported under
    that name; without them the step is the same as before they existed.
    """
    y, l_w = reconstruct(model, x, bandwidth)
    l_t = (y - x).abs().mean()
    l_f = mel_loss(y, x)
    l_l = loudness_loss(y, x)
    loss = lambda_t * l_t + LAMBDA_F * l_f + LAMBDA_W * l_w + lambda_l * l_l
    terms = terms or {}
    extra = {name: term(y, x) for name, (term, _) in terms.items()}
    loss = loss + sum(weight * extra[name] for name, (_, weight) in terms.items())
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    stats = {"loss": loss.item(), "l_t": l_t.item(), "l_f": l_f.item(), "commit": l_w.item(), "loud_db": l_l.item()}
    stats.update({name: value.item() for name, value in extra.items()})
    return stats


def adversarial_step(model, mel_loss, opt, x: torch.Tensor, bandwidth: float, adversary: Adversary,
                     generator: bool = True) -> dict:
    """One generator step through the balancer, then (with probability ``p_update``) one discriminator step.

    ``generator=False`` trains the discriminator alone (every step): a fresh
    discriminator against a trained codec cannot tell real from decoded at
    first (its hinge loss sits at 2.0 for hundreds of steps, measured), and
    until it can, its gradients only add noise.
    """
    model.train(generator)  # in eval mode the quantizer's EMA codebooks stay as they are
    with torch.set_grad_enabled(generator):
        y, l_w = reconstruct(model, x, bandwidth)
        l_t, l_f = (y - x).abs().mean(), mel_loss(y, x)
    stats = {"l_t": l_t.item(), "l_f": l_f.item(), "adv": float("nan"), "feat": float("nan"), "disc": float("nan")}
    if generator:
        adv, feat = generator_losses(adversary.disc, y, x)
        grad_y = adversary.balancer.gradient({"t": l_t, "f": l_f, "g": adv, "feat": feat}, y)
        opt.zero_grad()
        # With the codes frozen (freeze_codes) the commitment loss has no gradient to give.
        outputs, grads = ([y, LAMBDA_W * l_w], [grad_y, None]) if l_w.requires_grad else ([y], [grad_y])
        torch.autograd.backward(outputs, grads)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        stats.update(adv=adv.item(), feat=feat.item())
    if not generator or adversary.rng.random() < adversary.p_update:
        d = discriminator_loss(adversary.disc, y, x)
        adversary.opt.zero_grad()
        d.backward()
        adversary.opt.step()
        stats["disc"] = d.item()
    model.train()
    stats.update(commit=l_w.item(), loud_db=loudness_loss(y.detach(), x).item())
    return stats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("training/runs/small"))
    p.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this session")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=1.0, help="crop length")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (data stays on the CPU)")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--warmup-steps", type=int, default=550,
                   help="first steps without the quantizer: an untrained encoder's output barely varies "
                        "in time, so k-means on it gives identical codes and the codec collapses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loudness", type=float, default=0.0,
                   help="weight of the loudness term per dB of level error (see loudness_loss; 0: off, "
                        "as the shipped model's three stages)")
    p.add_argument("--lambda-t", type=float, default=LAMBDA_T,
                   help="weight of the time-domain L1 without --adversarial (it shrinks noise-like "
                        "sounds towards silence; the default gets a model from scratch started)")
    p.add_argument("--mel-floor", type=float, default=FLOOR,
                   help="additive floor inside the mel loss's log (1e-2 for a start from scratch; a "
                        "trained model can take audiocraft's 1e-5, which prices noise in empty bands)")
    p.add_argument("--envelope", type=float, default=0.0,
                   help="weight of the envelope-correlation term (losses.EnvelopeLoss: one minus STOI's "
                        "intermediate measure; 0: off)")
    p.add_argument("--stft", type=float, default=0.0,
                   help="weight of the multi-resolution linear STFT term (losses.STFTLoss: spectral convergence "
                        "+ log-magnitude L1 at windows 512-2048, with the mel floor; 0: off)")
    p.add_argument("--stft-convergence", type=float, default=1.0,
                   help="with --stft: the weight of its spectral convergence part (0: log-magnitude L1 only)")
    p.add_argument("--band-level", type=float, default=0.0,
                   help="weight of the band-level term per dB (losses.BandLevelLoss: each mel band's level "
                        "over the crop, so a band neither goes quiet nor fills with noise; 0: off)")
    p.add_argument("--noise-floor", type=float, default=0.0,
                   help="weight of the noise-floor term (losses.NoiseFloorLoss: the decoded mel bins' excess over "
                        "the input's below the mel floor, down to -100 dB, so quiet bins stay quiet; 0: off)")
    p.add_argument("--noise-floor-spread", type=int, default=0, metavar="K",
                   help="with --noise-floor: excuse output in bins within K mel bands and K frames of a louder "
                        "input bin (0: every bin on its own)")
    p.add_argument("--si-snr", type=float, default=0.0,
                   help="weight per dB of the SI-SNR term (losses.SISNRLoss: the waveform's shape without its "
                        "scale, which --lambda-t's L1 prices together; 0: off)")
    p.add_argument("--balance", action="store_true",
                   help="equal shares of speech, music and general sounds (default: by duration, 2/3 speech)")
    p.add_argument("--bandlimit", type=float, default=0.0, metavar="P",
                   help="band-limit this share of the crops through an 8/11.025/16/22.05 kHz source rate "
                        "(data.band_limit), so that empty top bands stay empty")
    p.add_argument("--tones", type=float, default=0.0, metavar="P",
                   help="turn this share of the crops into synthetic whistles over a quiet background "
                        "(data.whistles): the corpus has few steady tones")
    p.add_argument("--gaps", type=float, default=0.0, metavar="P",
                   help="give this share of the crops spans of digital silence (data.silent_gaps): the "
                        "decoder answers zeros with a low buzz")
    p.add_argument("--adversarial", action="store_true",
                   help="add the MS-STFT discriminator and balance the losses as the paper does (see above)")
    p.add_argument("--weights", type=float, nargs=4, default=[0.1, 1.0, 3.0, 3.0], metavar=("T", "F", "G", "FEAT"),
                   help="with --adversarial: the balancer's shares of L1, mel, adversarial and feature matching")
    p.add_argument("--disc-lr", type=float, default=3e-4, help="with --adversarial: the discriminator's learning rate")
    p.add_argument("--disc-warmup", type=int, default=0,
                   help="with --adversarial: first steps of the run that train the discriminator alone")
    p.add_argument("--disc-filters", type=int, default=32,
                   help="with --adversarial: channels of the discriminator's convs (the paper's 32; 16 is 4x cheaper)")
    p.add_argument("--decoder-only", action="store_true",
                   help="with --init: train the decoder alone; the encoder and codebooks, and so the codes, stay "
                        "those of the starting weights")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these weights when RUN has no checkpoint: the shipped .safetensors or "
                        "another run's checkpoint.pt (e.g. one trained on a GPU); the optimizer starts afresh")
    args = p.parse_args(argv)
    for share in ("bandlimit", "tones", "gaps"):
        if not 0.0 <= getattr(args, share) <= 1.0:
            p.error(f"--{share} is a share of the crops, from 0 to 1 (got {getattr(args, share)})")
    if args.noise_floor_spread < 0:
        p.error(f"--noise-floor-spread counts mel bands and frames, 0 or more (got {args.noise_floor_spread})")
    if args.decoder_only and args.init is None and not (args.run / "checkpoint.pt").exists():
        p.error("--decoder-only keeps the codes of trained weights: give them with --init")
    plain_terms = [f"--{name.replace('_', '-')}" for name in PLAIN_TERMS if getattr(args, name)]
    if args.adversarial and plain_terms:
        p.error(f"{', '.join(plain_terms)}: terms of the plain objective; the balanced one (--adversarial) takes "
                "its shares from --weights")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = encodec_np_small_24khz()
    model = build_torch_model(config).to(args.device)
    model.train()
    if args.decoder_only:
        freeze_codes(model)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr, betas=(0.5, 0.9))  # the paper's
    mel_loss = MelLoss(config.sample_rate, floor=args.mel_floor).to(args.device)
    terms = {}
    if args.envelope > 0:
        terms["env"] = (EnvelopeLoss(config.sample_rate).to(args.device), args.envelope)
    if args.stft > 0:
        terms["stft"] = (STFTLoss(floor=args.mel_floor, convergence=args.stft_convergence).to(args.device), args.stft)
    if args.band_level > 0:
        terms["band_db"] = (BandLevelLoss(config.sample_rate).to(args.device), args.band_level)
    if args.noise_floor > 0:
        hiss = NoiseFloorLoss(config.sample_rate, ceiling=args.mel_floor, spread=args.noise_floor_spread)
        terms["hiss"] = (hiss.to(args.device), args.noise_floor)
    if args.si_snr > 0:
        terms["neg_si_snr"] = (SISNRLoss().to(args.device), args.si_snr)
    crops = Crops(args.data, "train", seed=args.seed, balance=args.balance, bandlimit=args.bandlimit, tones=args.tones,
                  gaps=args.gaps)
    adversary = None
    if args.adversarial:
        adversary = Adversary(dict(zip(("t", "f", "g", "feat"), args.weights)), args.disc_lr, args.device,
                              filters=args.disc_filters, seed=args.seed)
    print(f"{crops.hours:.2f} h of training audio, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)

    args.run.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.run / "checkpoint.pt"
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=args.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
        torch.set_rng_state(state["torch_rng"].cpu())
        crops.rng.bit_generator.state = state["np_rng"]
        if adversary is not None and "adversary" in state:
            adversary.load_state_dict(state["adversary"])
        print(f"resumed at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
    elif args.init is not None:
        model.load_state_dict(initial_state(args.init))
        args.warmup_steps = 0  # the encoder is trained already
        print(f"initialised from {args.init}", flush=True)
    else:
        signal_preserving_init(model)

    stop = {"now": False}
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.update(now=True))
    log_new = not (args.run / "log.csv").exists()
    columns = ("l_t", "l_f", "adv", "feat", "commit", "disc", "loud_db") if adversary else ("loss", "l_t", "l_f", "commit", "loud_db")
    columns += tuple(terms)
    log = open(args.run / "log.csv", "a", newline="")
    writer = csv.writer(log)
    if log_new:
        writer.writerow(["step", "minutes", "bandwidth"] + list(columns))
    bandwidths = list(config.target_bandwidths)
    length = int(args.seconds * config.sample_rate)
    start = time.time()
    rng = np.random.default_rng(args.seed + step)
    while not stop["now"] and time.time() - start < args.minutes * 60:
        if args.max_steps is not None and step >= args.max_steps:
            break
        bw = float(rng.choice(bandwidths)) if step >= args.warmup_steps else None
        x = torch.from_numpy(crops.batch(args.batch, length)).to(args.device)
        t0 = time.time()
        if adversary is not None and bw is not None:
            stats = adversarial_step(model, mel_loss, opt, x, bw, adversary, generator=step >= args.disc_warmup)
        else:
            stats = train_step(model, mel_loss, opt, x, bw, lambda_l=args.loudness, lambda_t=args.lambda_t,
                               terms=terms)
            if adversary is not None:  # the warm-up of a run from scratch
                stats.update(adv=float("nan"), feat=float("nan"), disc=float("nan"))
        step += 1
        elapsed += time.time() - t0
        writer.writerow([step, f"{elapsed / 60:.2f}", bw or 0] + [f"{stats[k]:.5f}" for k in columns])
        if step % 10 == 0:
            log.flush()
            print(f"step {step} {elapsed / 60:.1f} min bw {bw} " +
                  " ".join(f"{k} {v:.4f}" for k, v in stats.items()), flush=True)
        if step % args.save_every == 0:
            save(ckpt_path, model, opt, step, elapsed, crops, adversary)
    save(ckpt_path, model, opt, step, elapsed, crops, adversary)
    log.close()
    print(f"saved step {step} to {ckpt_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
