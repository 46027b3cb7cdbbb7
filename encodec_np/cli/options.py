"""What the commands share: the options each defines once, input/output checks, progress, model loading.

Every option shared by several commands is added by one function here, so
every command spells it alike (the README's flag table is generated from the
parser: :func:`encodec_np.cli.flag_table`).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import numpy as np
from tqdm import tqdm

from ..config import DEFAULT_BANDWIDTH
from ..dataset import tokens_array
from ..errors import BandwidthError, EncodecError
from ..fileutil import atomic_output
from ..io.audio import output_subtype, write_audio
from ..io.hub import EMBEDDED
from ..longfile import decode_to_file
from ..model import load_model


class UsageError(EncodecError):
    """A bad combination of arguments found after parsing: exit code 2, like argparse's errors."""




def positive_int(text: str) -> int:
    """argparse type: ``text`` as an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# Each option shared by several commands is defined once, here, so every command spells it alike.
def add_backend_options(p, *, backend: str = "auto") -> None:
    """``--backend`` and ``--threads``."""
    p.add_argument("--backend", default=backend, metavar="NAME",
                   help="ops backend: auto (numba when it imports, else numpy), numba, numpy, cuda (a GPU with "
                        "numba-cuda); default auto (golden: numpy, the reference)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads per model call (default: all cores)")


def add_quiet_option(p) -> None:
    """``-q/--quiet``."""
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary line (warnings and errors still show)")


def add_force_option(p) -> None:
    """``-f/--force``."""
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")


def add_run_options(p, *, backend: str = "auto") -> None:
    """``--backend``, ``--threads``, ``-f/--force`` and ``-q/--quiet``: what every command that writes files takes."""
    add_backend_options(p, backend=backend)
    add_force_option(p)
    add_quiet_option(p)


def add_model_option(p, *, group=None) -> None:
    """``--model NAME|PATH``, the same for every command (what its absence means is in the help)."""
    (group or p).add_argument(
        "--model", metavar="NAME|PATH",
        help="codec: a name (encodec_np_small_24khz, shipped in the package; Meta's encodec_24khz, "
             "encodec_48khz, downloaded once and cached; facebook/encodec_24khz and the other Hugging Face "
             "ids, from the Hugging Face cache) or a checkpoint (.th, .safetensors, Hugging Face folder). "
             "Default: encode, roundtrip, stream, tokenize: encodec_24khz (as Meta's tool); decode, "
             "detokenize, info: the model named in the file; demo: encodec_np_small_24khz; golden: seeded "
             "random weights")


def bandwidth_list(text: str) -> list[float]:
    """``"6"`` or ``"1.5,6"`` → kbps values (``-b`` of tokenize, which may also be repeated)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected kbps values such as 6 or 1.5,6, got {text!r}")
    return values


def add_encoder_options(p, *, lm=True, several=False) -> None:
    """``--model``/``--hq`` and ``-b``; ``--lm`` unless ``lm=False``; ``several``: ``-b`` repeatable, comma lists."""
    group = p.add_mutually_exclusive_group()
    add_model_option(p, group=group)
    group.add_argument("--hq", action="store_true", help="use the 48 kHz stereo model encodec_48khz")
    p.add_argument("-b", "--bandwidth", type=bandwidth_list if several else float, default=None, metavar="KBPS",
                   action="extend" if several else "store",
                   help=f"target bandwidth in kbps, one of the model's (encodec_np_small_24khz: 1.5, 3, 6, 12; "
                        f"encodec_24khz: 1.5, 3, 6, 12, 24; encodec_48khz: 3, 6, 12, 24); default {DEFAULT_BANDWIDTH:g}"
                        + ("; repeat it or give a comma list for several" if several else ""))
    if not lm:
        return
    p.add_argument("-l", "--lm", action="store_true",
                   help="entropy-code the codes with the model's language model (smaller, much slower)")
    add_lm_model_option(p)


def add_lm_model_option(p) -> None:
    """``--lm-model NAME|PATH``: the language model for ``--lm`` and for LM-coded files."""
    p.add_argument("--lm-model", metavar="NAME|PATH", default=None,
                   help="language model for --lm and for decoding LM-coded files (default: the one matching the codec)")


def add_audio_output_options(p) -> None:
    """``-r/--rescale`` and ``--float``: how decoded audio is written (see :func:`write_wav`)."""
    p.add_argument("-r", "--rescale", action="store_true",
                   help="scale the output down so its peak is 0.99 instead of clamping it (clamping warns)")
    p.add_argument("--float", action="store_true",
                   help="write 32-bit float samples (WAV) instead of 16-bit PCM")


def add_tokens_option(p) -> None:
    """``--tokens OUT.npy``: the codes saved as an int16 array too (see :func:`write_tokens`)."""
    p.add_argument("--tokens", metavar="OUT.npy", default=None,
                   help="also save the codes as an int16 array [K, T] (K codebooks, T frames) for audio-LM "
                        "pipelines; for segmented models (encodec_48khz: 1 s segments with 1%% overlap) the "
                        "segments' frames are concatenated along T, so T is the sum over segments")


def check_io(args, inputs, outputs) -> None:
    """Fail early: inputs exist, outputs are new (or -f), distinct, not an input, in existing folders."""
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(2, "no such file", str(path))
    seen = set()
    for out in outputs:
        key = os.path.abspath(out)
        if key in seen:
            raise UsageError(f"{out} is given as two outputs")
        seen.add(key)
        if not out.parent.is_dir():
            raise EncodecError(f"the output folder {out.parent} does not exist; create it first")
        if out.is_dir():
            raise EncodecError(f"{out} is a folder; give an output file name")
        for inp in inputs:
            if os.path.abspath(inp) == key or (out.exists() and os.path.samefile(inp, out)):
                raise EncodecError(f"the output {out} is the input file; choose another name "
                                   "(inputs are never modified)")
        if out.exists() and not args.force:
            raise EncodecError(f"{out} already exists; use -f/--force to overwrite it")


def wants_bars(args) -> bool:
    """Progress bars go to stderr unless ``-q`` or stderr is not a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)  # stderr may be None or a bare stream object
    return not getattr(args, "quiet", False) and bool(isatty and isatty())


def progress_bar(args):
    """A ``progress(stage, done, total)`` drawing tqdm bars on stderr, or None (see :func:`wants_bars`)."""
    if not wants_bars(args):
        return None

    bars: dict = {}

    def update(stage: str, done: int, total: int) -> None:
        if total <= 1:  # one segment: nothing to show progress over
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="segment", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def say(args, message: str) -> None:
    """Print ``message`` unless ``-q``."""
    if not getattr(args, "quiet", False):
        print(message)


def load_codec(args, spec):
    """The model ``spec`` (a name or path) on the command's ``--backend`` with its ``--threads``."""
    return load_model(spec, backend=args.backend, threads=args.threads)


def encoder_model(args):
    """The codec for encode/roundtrip, at the requested bandwidth."""
    model = load_codec(args, model_spec(args))
    model.set_target_bandwidth(checked_bandwidth(model.config, args.bandwidth))
    return model


def model_spec(args) -> str:
    """The ``--model`` / ``--hq`` choice as a name or path."""
    return args.model or ("encodec_48khz" if getattr(args, "hq", False) else "encodec_24khz")  # stream: no --hq


def checked_bandwidth(config, bandwidth) -> float:
    """:meth:`~encodec_np.EncodecConfig.checked_bandwidth`, failing as a usage error (exit 2)."""
    with bandwidth_is_usage():
        return config.checked_bandwidth(bandwidth)


@contextlib.contextmanager
def bandwidth_is_usage():
    """Turn a :class:`~encodec_np.errors.BandwidthError` (a bad ``-b``) into a usage error (exit 2)."""
    try:
        yield
    except BandwidthError as exc:
        raise UsageError(f"-b {exc.bandwidth:g}: {exc}" if exc.bandwidth is not None else f"-b: {exc}") from None


def write_tokens(path, frames, bins: int) -> None:
    """Save ``frames``' codes to ``path`` as :func:`~encodec_np.dataset.tokens_array` ``[K, T]`` int16, atomically."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, tokens_array(frames, bins))


def subtype_for(args, path) -> str:
    """The subtype the output file gets (the format's own for .ogg and .mp3): checked before the work."""
    return output_subtype(path, "FLOAT" if args.float else "PCM_16")


def write_wav(args, path, wav, sample_rate) -> str:
    """Write ``wav`` to ``path`` as ``-r`` and ``--float`` ask (see :func:`subtype_for`); returns the subtype."""
    subtype = subtype_for(args, path)
    write_audio(path, wav, sample_rate, rescale=args.rescale, subtype=subtype)
    return subtype


def decode_into(args, model, frames, audio_length: int, path, progress) -> tuple[int, str]:
    """Decode into ``path`` (long outputs chunk by chunk): ``(samples written, subtype)``."""
    subtype = subtype_for(args, path)
    return decode_to_file(model, frames, audio_length, path, subtype=subtype, rescale=args.rescale,
                          progress=progress), subtype


def kbps(nbytes: int, samples: int, sample_rate: int) -> float:
    """The bitrate of ``nbytes`` for ``samples`` at ``sample_rate``, in kbps."""
    return 8 * nbytes / 1000 / (samples / sample_rate)


def describe_codes(model, num_codebooks: int, frames) -> str:
    """A summary of the codes for the final line: model, nominal kbps, codebooks x frames (and segments)."""
    total = sum(np.asarray(c).shape[-1] for c, _ in frames)
    nominal = num_codebooks * model.bits_per_codebook * model.frame_rate / 1000
    segs = f" in {len(frames)} segments" if len(frames) > 1 else ""
    return f"{model.name}, {nominal:g} kbps: {num_codebooks} codebooks x {total} frames{segs}"



def pretrained_codecs() -> tuple:
    """The model names a file may name without ``--model``: Meta's two and the shipped one."""
    return ("encodec_24khz", "encodec_48khz", EMBEDDED)
