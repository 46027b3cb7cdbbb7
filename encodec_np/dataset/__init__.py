"""Tokenize audio datasets: sharded int16 codes plus a manifest (``encodec-np tokenize`` / ``detokenize``).

::

    INPUT_DIR (audio files, recursively) or a manifest (.csv / .jsonl with a ``path`` column)
      │ keys = relative paths, sorted, cut into groups of --shard-size (group i → shard i)
      ▼
    workers (spawned processes, or Dask): sha256 ─ read_audio ─ convert_audio ─ encode at the highest -b
      │ codes int16 [K, F] per file; a lower bandwidth's codes are the first codebooks of a higher one's
      ▼
    this process, once all files of a group are back: one shard per (group, bandwidth), written under a
    temporary name and renamed, then its rows appended to failed.jsonl and manifest.jsonl (the journal)
      ▼
    at the end: manifest.jsonl / failed.jsonl rewritten sorted; shards that no row names are removed

Layout of ``OUT_DIR``::

    manifest.jsonl                              a row per (input, bandwidth): see :func:`read_manifest`
    failed.jsonl                                a row per input that could not be tokenized, with the reason
    manifest.parquet                            with --parquet (pyarrow)
    shards/6kbps/shard-00000-1f2e3d4c5b.npz     {relative path: codes int16 [K, F]} for the group's inputs

A shard's name ends in a digest of what it holds (model checksum, bandwidth,
keys and content hashes), so a changed group never overwrites a shard that the
journal still names, and the same inputs give the same names and bytes
whatever the number of workers (Dask or local). A re-run hashes every input
and reuses the codes of each file whose content, model and bandwidths are
already in the manifest; a file that crashed its worker is retried alone and
recorded as failed if it crashes again (the next run retries it).

The modules, in the order the data goes: :mod:`.scan` (the inputs),
:mod:`.worker` (one file, in a worker process), :mod:`.pool` (the local
processes, or Dask), :mod:`.run` (:func:`tokenize_dataset`: groups, reuse,
the summary), :mod:`.outdir` (shards, journal, lock, clean-up, parquet),
:mod:`.readback` (the codes read back, as decoding's frames); and
:mod:`.checkpoints` (the model's file and checksum), :mod:`.extras` (Dask and
pyarrow, imported when asked for).
"""
from ..kernels import available_cores
from .checkpoints import model_checksum, resolve_checkpoint
from .outdir import FAILED, LOCK, MANIFEST, PARQUET, SHARDS, read_manifest, write_shard
from .readback import audio_name, codes_of, read_tokens, select_tokens, tokens_array, tokens_to_frames
from .run import DEFAULT_SHARD_SIZE, TokenizeSummary, tokenize_dataset
from .scan import AUDIO_SUFFIXES, list_inputs
from .worker import FAULT_ENV, THREAD_VARS

__all__ = [
    "AUDIO_SUFFIXES", "DEFAULT_SHARD_SIZE", "FAILED", "FAULT_ENV", "LOCK", "MANIFEST", "PARQUET", "SHARDS",
    "THREAD_VARS", "TokenizeSummary", "audio_name", "available_cores", "codes_of", "list_inputs", "model_checksum",
    "read_manifest", "read_tokens", "resolve_checkpoint", "select_tokens", "tokenize_dataset", "tokens_array",
    "tokens_to_frames", "write_shard",
]
