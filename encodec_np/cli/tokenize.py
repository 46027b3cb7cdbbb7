"""``encodec-np tokenize`` and ``detokenize``: the command line of :mod:`encodec_np.dataset`."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..compression import decode_frames, resolve_model
from ..dataset import (
    DEFAULT_SHARD_SIZE,
    FAILED,
    audio_name,
    codes_of,
    model_checksum,
    resolve_checkpoint,
    select_tokens,
    tokenize_dataset,
    tokens_to_frames,
)
from ..errors import EncodecError
from .options import (
    UsageError,
    add_audio_output_options,
    add_encoder_options,
    add_model_option,
    add_run_options,
    bandwidth_is_usage,
    load_codec,
    model_spec,
    positive_int,
    pretrained_codecs,
    progress_bar,
    say,
    write_wav,
)


def add_tokenize_parser(sub, common) -> None:
    """Add ``tokenize`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "tokenize", parents=[common], help="encode a folder or manifest of audio files into sharded codes",
        description="Encode every audio file of INPUT (a folder, scanned recursively, or a .csv/.jsonl manifest "
                    "with a 'path' column) into int16 codes, written as .npz shards (one array per input, named "
                    "by its relative path) with manifest.jsonl and failed.jsonl in OUT_DIR. Runs on all cores by "
                    "default; a re-run skips finished work; unreadable files are reported, not fatal.")
    p.add_argument("input", metavar="INPUT_DIR_OR_MANIFEST")
    p.add_argument("output", metavar="OUT_DIR")
    add_encoder_options(p, lm=False, several=True)
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="worker processes (default: one per core); with --dask, LocalCluster workers")
    p.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Dask: a LocalCluster of --workers workers, or the cluster at ADDRESS "
                        "(tcp://host:8786; its workers must read the inputs and the checkpoint at the same paths)")
    p.add_argument("--shard-size", type=positive_int, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help=f"inputs per shard (default {DEFAULT_SHARD_SIZE})")
    p.add_argument("--parquet", action="store_true", help="also write manifest.parquet (needs pyarrow)")
    add_run_options(p)


def cmd_tokenize(args) -> int:
    """Run ``encodec-np tokenize`` (:func:`~encodec_np.dataset.tokenize_dataset`); returns the exit code."""
    if args.dask is not None and args.dask != "local" and args.workers:
        raise UsageError("--workers applies to local runs and --dask without an address; "
                         "a running cluster has its own workers")
    bar = progress_bar(args)
    with bandwidth_is_usage():
        summary = tokenize_dataset(
            args.input, args.output, model=model_spec(args), bandwidths=args.bandwidth or [None],
            workers=args.workers, dask=args.dask, shard_size=args.shard_size, backend=args.backend,
            threads=args.threads, force=args.force, parquet=args.parquet,
            progress=(lambda done, total: bar("files", done, total)) if bar else None)
    if not args.quiet:
        print("\n".join(summary.lines()))
    if summary.failed:
        warnings.warn(f"{len(summary.failed)} of {summary.files} files could not be tokenized; "
                      f"the reasons are in {Path(args.output) / FAILED}")
    return 0


def add_detokenize_parser(sub, common) -> None:
    """Add ``detokenize`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "detokenize", parents=[common], help="decode tokenize's shards back to audio files (spot checks)",
        description="Decode the codes of one shard, or of all shards of a tokenize output folder, to audio "
                    "files OUT_AUDIO_DIR/<bandwidth>kbps/<relative path>.wav at the model's rate.")
    p.add_argument("input", metavar="SHARD_OR_OUT_DIR")
    p.add_argument("output", metavar="OUT_AUDIO_DIR")
    add_model_option(p)
    p.add_argument("-b", "--bandwidth", type=float, default=None, metavar="KBPS",
                   help="only the codes at this bandwidth (default: all)")
    p.add_argument("-n", "--limit", type=positive_int, default=None, metavar="N",
                   help="decode only the first N rows of the manifest")
    add_audio_output_options(p)
    add_run_options(p)


def cmd_detokenize(args) -> int:
    """Run ``encodec-np detokenize``: decode a shard's or an output folder's codes to audio files; returns 0."""
    out_dir, rows = select_tokens(args.input, args.bandwidth, args.limit)
    if not rows:
        raise EncodecError(f"no tokens in {args.input}" + (f" at {args.bandwidth:g} kbps" if args.bandwidth else ""))
    name = rows[0]["model"]
    if args.model is None and name not in pretrained_codecs():
        raise EncodecError(f"the tokens were made with {name!r}, which is not a pretrained name; "
                           "pass its checkpoint with --model PATH")
    checkpoint = resolve_checkpoint(args.model or name)

    model = resolve_model(load_codec(args, str(checkpoint)), name)
    if model_checksum(checkpoint) != rows[0]["model_sha256"]:
        warnings.warn(f"{checkpoint} is not the checkpoint that made the tokens (sha256 differs); "
                      "the audio will not be what they encode")
    out = Path(args.output)
    target = {id(row): out / f"{row['bandwidth']:g}kbps" / audio_name(row["key"]) for row in rows}
    targets = list(target.values())
    if len(set(targets)) != len(targets):
        raise EncodecError("two inputs map to the same output file name (say a.wav and a.flac in one folder: "
                           "both decode to a.wav); detokenize one shard at a time")
    existing = [t for t in targets if t.exists()]
    if existing and not args.force:
        raise EncodecError(f"{existing[0]} already exists ({len(existing)} of the outputs do); "
                           "use -f/--force to overwrite them")
    seconds = 0.0
    for row, codes in codes_of(out_dir, rows):
        wav = decode_frames(model, tokens_to_frames(row, codes, model.config), row["samples"])
        target[id(row)].parent.mkdir(parents=True, exist_ok=True)
        write_wav(args, target[id(row)], wav, model.sample_rate)
        seconds += row["samples"] / model.sample_rate
    say(args, f"wrote {len(rows)} files ({seconds:.1f} s of audio, {model.sample_rate} Hz) below {out}")
    return 0
