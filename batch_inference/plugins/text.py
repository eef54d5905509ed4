"""The text input adapter: a string column to length-sorted, token-capped chunks of token ids.

Per read batch: null texts are refused ("null text"; an empty string is embedded), the rest are
tokenised by the fast tokenizer (truncated at `max_seq_length`), sorted by token length (longest
first) and cut into chunks whose padded size (rows x longest row) stays under a token cap, so a
chunk of short texts carries many rows and one of long texts few. A chunk also ends where rows
get much shorter than its longest one, so that padding stays under about a quarter. `Prepared.order` maps outputs
back: `restored = np.empty_like(values); restored[order] = values` is the input order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from batch_inference.plugins.protocols import LoadedArtifact, Prepared

NULL_TEXT = "null text"
# A chunk of at least this many rows ends when a row would be padded to over 1/_MIN_FILL its length.
_MIN_FILL = 0.75
_MIN_SPLIT_ROWS = 16


class TextTokens:
    """Input adapter for one text column of a features partition (see the module docstring)."""

    def __init__(self, tokenizer: Any, *, column: str = "text", max_seq_length: int = 256,
                 max_tokens_per_chunk: int = 16_384, sort_window: int | None = None,
                 tokenizer_id: str | None = None, pad_id: int | None = None) -> None:
        if max_seq_length < 2:
            raise ValueError(f"max_seq_length must be at least 2, got {max_seq_length}")
        if max_tokens_per_chunk < max_seq_length:
            raise ValueError(f"max_tokens_per_chunk ({max_tokens_per_chunk}) must hold one row of "
                             f"max_seq_length ({max_seq_length}) tokens")
        if sort_window is not None and sort_window < 1:
            raise ValueError(f"sort_window must be positive, got {sort_window}")
        tokenizer = getattr(tokenizer, "backend_tokenizer", tokenizer)  # a transformers fast tokenizer
        tokenizer = type(tokenizer).from_str(tokenizer.to_str())  # a private copy to configure
        tokenizer.enable_truncation(max_length=int(max_seq_length))
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.column = column
        self.max_seq_length = int(max_seq_length)
        self.max_tokens_per_chunk = int(max_tokens_per_chunk)
        self.sort_window = sort_window
        if pad_id is None:
            found = tokenizer.token_to_id("[PAD]")
            pad_id = 0 if found is None else found
        self.pad_id = int(pad_id)
        self.tokenizer_id = tokenizer_id or hashlib.sha256(tokenizer.to_str().encode()).hexdigest()

    @classmethod
    def from_model(cls, loaded: LoadedArtifact, column: str = "text", max_seq_length: int | None = None,
                   max_tokens_per_chunk: int = 16_384, sort_window: int | None = None) -> TextTokens:
        """The adapter for a loaded sentence-transformer version (its tokenizer and max length)."""
        tokenizer = loaded.extras.get("tokenizer")
        if tokenizer is None:
            raise ValueError("the loaded model has no tokenizer in its extras")
        limit = int(loaded.config.get("max_seq_length", 256))
        length = limit if max_seq_length is None else min(int(max_seq_length), limit)
        return cls(tokenizer, column=column, max_seq_length=length,
                   max_tokens_per_chunk=max_tokens_per_chunk, sort_window=sort_window,
                   tokenizer_id=loaded.extras.get("tokenizer_sha256"))

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def fingerprint(self) -> str:
        return (f"TextTokens(column={self.column}, tokenizer_sha256={self.tokenizer_id}, "
                f"max_seq_length={self.max_seq_length}, max_tokens_per_chunk={self.max_tokens_per_chunk}, "
                f"sort_window={self.sort_window}, chunking=min_fill:{_MIN_FILL}/{_MIN_SPLIT_ROWS})")

    def prepare(self, batch: pa.RecordBatch, forward_rows: int) -> Prepared:
        """Tokenise, sort by length, chunk; refuse null texts."""
        record_ids = batch.column(0)  # the row key
        text = batch.column(self.column)
        rejected_ids: list[str] = []
        reasons: list[str] = []
        if text.null_count:
            valid = text.is_valid()
            rejected_ids = [str(x) for x in record_ids.filter(pc.invert(valid)).to_pylist()]
            reasons = [NULL_TEXT] * len(rejected_ids)
            record_ids, text = record_ids.filter(valid), text.filter(valid)
        texts = text.to_pylist()
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True) if texts else []
        ids = [e.ids for e in encodings]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        truncated = sum(1 for e in encodings if e.overflowing)
        order = self._order(lengths)
        chunks = self._chunks(ids, lengths, order, max(1, int(forward_rows)))
        padded = sum(int(c["input_ids"].numel()) for c in chunks)
        stats = {"truncated_rows": truncated, "tokens": int(lengths.sum()), "padded_tokens": padded}
        return Prepared(record_ids=record_ids, chunks=chunks, order=order,
                        rejected_ids=rejected_ids, rejected_reasons=reasons, stats=stats)

    def _order(self, lengths: np.ndarray) -> np.ndarray:
        """Kept-row indices, longest first within each sort window (stable on ties)."""
        n = len(lengths)
        window = n if self.sort_window is None else self.sort_window
        parts = []
        for start in range(0, n, max(1, window)):
            part = lengths[start:start + window]
            parts.append(start + np.argsort(-part, kind="stable"))
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _chunks(self, ids: list[list[int]], lengths: np.ndarray, order: np.ndarray,
                forward_rows: int) -> list[dict[str, torch.Tensor]]:
        chunks = []
        start = 0
        while start < len(order):
            end, width = start, 0
            while end < len(order) and end - start < forward_rows:
                length = int(lengths[order[end]])
                w = max(width, length)
                if end > start and (w * (end - start + 1) > self.max_tokens_per_chunk or (
                        end - start >= _MIN_SPLIT_ROWS and length < _MIN_FILL * width)):
                    break
                width, end = w, end + 1
            input_ids = np.full((end - start, width), self.pad_id, dtype=np.int64)
            mask = np.zeros((end - start, width), dtype=np.int64)
            for row, index in enumerate(order[start:end]):
                n = int(lengths[index])
                input_ids[row, :n] = ids[index]
                mask[row, :n] = 1
            chunks.append({"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)})
            start = end
        return chunks


def encode_texts(loaded: LoadedArtifact, texts: Sequence[str], *, adapter: TextTokens | None = None,
                 read_rows: int = 4096, forward_rows: int = 8192, device: str | torch.device = "cpu",
                 normalize: bool = True) -> np.ndarray:
    """Embed `texts` (no nulls) with a loaded version: the engine's steps, in one thread.

    Read windows of `read_rows`, tokenise/sort/chunk, forward, L2-normalise, restore the order.
    Returns a (len(texts) x dimension) float32 array in the input order.
    """
    from batch_inference.plugins.heads import Embedding

    adapter = adapter or TextTokens.from_model(loaded)
    head = Embedding(int(loaded.config.get("dimension", 384)), normalize=normalize)
    module = loaded.module.to(device).eval()
    out = np.empty((len(texts), head.dimension), dtype=np.float32)
    for start in range(0, len(texts), read_rows):
        part = list(texts[start:start + read_rows])
        batch = pa.record_batch({"record_id": pa.array([str(i) for i in range(len(part))]),
                                 adapter.column: pa.array(part, pa.string())})
        prepared = adapter.prepare(batch, forward_rows)
        if prepared.rejected_ids:
            raise ValueError(f"{len(prepared.rejected_ids)} null text(s) given to encode_texts")
        values = []
        with torch.inference_mode():
            for chunk in prepared.chunks:
                values.append(head.transform(module(chunk)).float().cpu().numpy())
        stacked = np.concatenate(values) if values else np.zeros((0, head.dimension), np.float32)
        restored = np.empty_like(stacked)
        restored[prepared.order] = stacked
        out[start:start + len(part)] = restored
    return out
