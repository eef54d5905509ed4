"""The sentence-transformer model format: a mean-pooled BERT encoder from plain, verified files.

A version is a flat directory of plain files, each verified by SHA-256 before the loader runs:

- `model.safetensors` and `bert_config.json`: the BERT encoder, rebuilt from its config by
  `transformers` (no pickle, no remote code, no hub access);
- `tokenizer.json` (+ `tokenizer_config.json`, `vocab.txt`, `special_tokens_map.json`): the fast
  tokenizer;
- `pooling_config.json`, `sentence_bert_config.json`: the sentence-transformers settings it was
  published with (mean pooling, 256 tokens), kept for provenance;
- `config.json`: ours (format tag, dimension, max_seq_length, pooling, normalize);
- `reference.json`: the embedding-drift reference (see `batch_inference.quality.embedding_drift`).

A pipeline's model builder writes such a directory (the support-tickets example packages one from
a wheel); nothing is downloaded at build or run time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from batch_inference.modeling.artifact import manifest
from batch_inference.plugins.protocols import LoadedArtifact
from batch_inference.settings import export_library_settings

FORMAT_TAG = "batch_inference.sentence_transformer.v1"

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BERT_CONFIG_FILE = "bert_config.json"
TOKENIZER_FILE = "tokenizer.json"
REFERENCE_FILE = "reference.json"
# Our name -> the file's path inside the package's model folder.
PACKAGED_FILES: dict[str, str] = {
    WEIGHTS_FILE: "model.safetensors",
    BERT_CONFIG_FILE: "config.json",
    TOKENIZER_FILE: "tokenizer.json",
    "tokenizer_config.json": "tokenizer_config.json",
    "vocab.txt": "vocab.txt",
    "special_tokens_map.json": "special_tokens_map.json",
    "pooling_config.json": "1_Pooling/config.json",
    "sentence_bert_config.json": "sentence_bert_config.json",
}
REQUIRED_FILES: tuple[str, ...] = (CONFIG_FILE, REFERENCE_FILE, *PACKAGED_FILES)

DIMENSION = 384
MAX_SEQ_LENGTH = 256
# Keys of the published checkpoint that the mean-pooled encoder does not use.
_UNUSED_KEYS = ("embeddings.position_ids",)
_UNUSED_PREFIXES = ("pooler.",)


def offline() -> None:
    """Make sure nothing from the Hugging Face stack reaches for the network."""
    export_library_settings({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
                            defaults={"HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "true"})


def file_digests(directory: Path) -> dict[str, str]:
    """Name -> SHA-256 of every file of a version directory (the registry's manifest)."""
    return manifest(Path(directory))


class MeanPooledEncoder(torch.nn.Module):
    """A BERT encoder followed by mean pooling over the attention mask.

    `forward(chunk)` takes `{"input_ids", "attention_mask"}` (int64, rows x tokens) and returns
    the (rows x hidden) pooled embeddings, not normalised (the output head normalises).
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, chunk: Mapping[str, torch.Tensor]) -> torch.Tensor:
        device = self.encoder.embeddings.word_embeddings.weight.device
        input_ids = chunk["input_ids"].to(device, non_blocking=True)
        mask = chunk["attention_mask"].to(device, non_blocking=True)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * weights).sum(dim=1)
        return summed / weights.sum(dim=1).clamp(min=1e-9)


def build_tokenizer(directory: Path, max_seq_length: int) -> Any:
    """The fast (Rust) tokenizer from `tokenizer.json`: truncation at `max_seq_length`, no padding."""
    offline()
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(directory) / TOKENIZER_FILE))
    tokenizer.enable_truncation(max_length=int(max_seq_length))
    tokenizer.no_padding()
    return tokenizer


class SentenceTransformerFormat:
    """Loads a version in this layout: verified files in, a pooled encoder out."""

    tag = FORMAT_TAG

    def load(self, directory: Path, files: Mapping[str, str]) -> LoadedArtifact:
        """Rebuild the encoder from `bert_config.json` + `model.safetensors` (strict key match)."""
        directory = Path(directory)
        missing = [n for n in REQUIRED_FILES if n not in files or not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(f"model version in {directory} lacks file(s) {missing} "
                                    f"(format {FORMAT_TAG})")
        config = json.loads((directory / CONFIG_FILE).read_text())
        if config.get("format") != FORMAT_TAG:
            raise ValueError(f"unsupported model format {config.get('format')!r}, expected {FORMAT_TAG!r}")
        offline()
        from safetensors.torch import load_file
        from transformers import BertConfig, BertModel

        bert_config = BertConfig.from_dict(json.loads((directory / BERT_CONFIG_FILE).read_text()))
        encoder = BertModel(bert_config, add_pooling_layer=False)
        state = {k: v for k, v in load_file(str(directory / WEIGHTS_FILE)).items()
                 if k not in _UNUSED_KEYS and not k.startswith(_UNUSED_PREFIXES)}
        encoder.load_state_dict(state, strict=True)
        module = MeanPooledEncoder(encoder).eval()
        max_len = int(config.get("max_seq_length", MAX_SEQ_LENGTH))
        extras = {
            "tokenizer": build_tokenizer(directory, max_len),
            "tokenizer_sha256": files[TOKENIZER_FILE],
            "reference": json.loads((directory / REFERENCE_FILE).read_text()),
        }
        return LoadedArtifact(module=module, config=config, extras=extras)


def version_config(source: Path, model_name: str, package: str) -> dict[str, Any]:
    """Our `config.json` for the sentence-transformer folder `source` (the upstream layout), naming
    the model and the package (with its version, if installed) it came from."""
    st_config = json.loads((source / "sentence_bert_config.json").read_text())
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{source} is not a mean-pooling sentence-transformer")
    try:
        from importlib.metadata import version

        package = f"{package}=={version(package)}"
    except Exception:  # noqa: BLE001 - provenance only
        pass
    return {
        "format": FORMAT_TAG,
        "model_name": model_name,
        "source": package,
        "dimension": int(pooling.get("word_embedding_dimension", DIMENSION)),
        "max_seq_length": int(st_config.get("max_seq_length", MAX_SEQ_LENGTH)),
        "pooling": "mean",
        "normalize": True,
    }
