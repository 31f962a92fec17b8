"""Do the models frugal saves load in the ecosystem, with the same embeddings?

Builds, in frugal's environment: ``best/`` of a real ``optimize`` on the bundled MiniLM (ONNX
int8, saved under ``onnx/model.onnx``) and a PyTorch variant (MiniLM with 3 of its 6 layers,
distilled, saved as ``model.safetensors``). Then, in a separate environment with
sentence-transformers' ONNX backend and Hugging Face Optimum (``bench/setup_ecosystem.sh``),
loads each folder with ``SentenceTransformer(folder)`` (``backend="onnx"`` for the ONNX one)
and, for the ONNX one, ``ORTModelForFeatureExtraction.from_pretrained(folder)`` plus the
pooling docs/optimize.md documents, and checks their embeddings equal
``frugalml.load(folder).encode`` to 1e-5 (max absolute difference). Every loader runs one
text per batch: dynamic int8 quantizes activations with one scale per batch, so an int8
model's outputs depend on which texts (and how much padding) share a batch.

    bash bench/setup_ecosystem.sh                      # once: bench/.venv-ecosystem
    python bench/check_ecosystem.py                    # prints JSON, writes bench/results/

Prints one JSON object; exit 1 when a loader refuses a folder or differs by more than 1e-5.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-5

# Runs in the ecosystem environment: argv = folders.json, texts.json; prints JSON.
OTHER_SIDE = r"""
import json, sys
import numpy as np
folders = json.loads(open(sys.argv[1]).read())
texts = json.loads(open(sys.argv[2]).read())
out = {"versions": {}}
import sentence_transformers, transformers, onnxruntime
out["versions"] = {"sentence_transformers": sentence_transformers.__version__,
                   "transformers": transformers.__version__,
                   "onnxruntime": onnxruntime.__version__}
try:
    import optimum.onnxruntime as oo
    import importlib.metadata as md
    out["versions"]["optimum_onnx"] = md.version("optimum-onnx")
except Exception as e:
    oo = None
    out["versions"]["optimum_onnx"] = f"unavailable: {e}"
from sentence_transformers import SentenceTransformer
results = []
for item in folders:
    folder, engine = item["folder"], item["engine"]
    def record(loader, fn):
        try:
            emb = np.asarray(fn(), dtype=np.float32)
            np.save(f"{folder}.{loader}.npy", emb)
            results.append({"folder": item["name"], "loader": loader, "error": None})
        except Exception as e:
            results.append({"folder": item["name"], "loader": loader,
                            "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
    backend = "onnx" if engine == "onnx" else "torch"
    record(f"SentenceTransformer(backend={backend})",
           lambda: SentenceTransformer(folder, backend=backend, device="cpu").encode(
               texts, batch_size=1))
    if engine == "onnx" and oo is not None:
        def optimum_embed():
            from transformers import AutoTokenizer
            model = oo.ORTModelForFeatureExtraction.from_pretrained(folder)
            tok = AutoTokenizer.from_pretrained(folder)
            rows = []
            for i in range(len(texts)):
                enc = tok(texts[i:i + 1], padding=True, truncation=True, max_length=256,
                          return_tensors="np")
                hidden = model(**enc).last_hidden_state
                hidden = np.asarray(hidden, dtype=np.float32)
                mask = enc["attention_mask"][:, :, None].astype(np.float32)
                mean = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
                norm = np.linalg.norm(mean, axis=1, keepdims=True)
                rows.append(mean / np.clip(norm, 1e-12, None))
            return np.concatenate(rows)
        record("ORTModelForFeatureExtraction", optimum_embed)
out["results"] = results
print(json.dumps(out))
"""


def build(work: Path) -> list[dict[str, str]]:
    """The two folders, each with frugal's own embeddings saved next to it."""
    import frugalml
    from frugalml.data import stdlib_sentences
    from frugalml.passes import LayerDrop, OnnxExport, QuantizeDynamic, persist

    texts = stdlib_sentences(64, seed=7)
    data = work / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    res = frugalml.optimize(
        "minilm",
        "fidelity",
        data,
        out=work / "optimize",
        ledger=f"sqlite:///{work / 'ledger.db'}",
        tiers={"convert": [(OnnxExport(), QuantizeDynamic(per_channel=True))]},
        max_quality_drop=10.0,
        repeats=1,
        runtime_variants=0,
    )
    if res.best is None:
        raise SystemExit(f"optimize chose nothing: {res.notes}")
    torch_variant = frugalml.apply(
        frugalml.load("minilm"), LayerDrop(keep=3, epochs=1), texts=texts
    )
    folders = [
        {
            "name": "optimize best (onnx int8)",
            "folder": str(work / "optimize" / "best"),
            "engine": "onnx",
        },
        {
            "name": "layer_drop(keep=3) (torch)",
            "folder": str(persist.save(torch_variant, work / "layer-drop")),
            "engine": "torch",
        },
    ]
    for item in folders:
        model = frugalml.load(item["folder"])
        one = model.evolve(runtime=dataclasses.replace(model.runtime, batch_size=1))
        np.save(f"{item['folder']}.frugal.npy", one.encode(texts))
    (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    (work / "folders.json").write_text(json.dumps(folders), encoding="utf-8")
    return folders


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=HERE / ".venv-ecosystem")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "check_ecosystem.json")
    args = ap.parse_args()
    python = args.venv / "bin" / "python"
    if not python.exists():
        print(f"no {python}: run bash bench/setup_ecosystem.sh first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="frugal-ecosystem-") as tmp:
        work = Path(tmp)
        folders = build(work)
        done = subprocess.run(
            [str(python), "-c", OTHER_SIDE, str(work / "folders.json"), str(work / "texts.json")],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        other = json.loads(done.stdout.strip().splitlines()[-1])
        by_name = {f["name"]: f for f in folders}
        checks = []
        for r in other["results"]:
            folder = by_name[r["folder"]]
            row = {
                **r,
                "files": sorted(
                    str(p.relative_to(folder["folder"]))
                    for p in Path(folder["folder"]).rglob("*")
                    if p.is_file()
                ),
            }
            if r["error"] is None:
                ours = np.load(f"{folder['folder']}.frugal.npy")
                theirs = np.load(f"{folder['folder']}.{r['loader']}.npy")
                row["max_abs_diff"] = float(np.abs(ours - theirs).max())
                row["ok"] = row["max_abs_diff"] <= TOLERANCE
            else:
                row["ok"] = False
            checks.append(row)
    result = {
        "what": "embeddings of frugal-saved folders, ecosystem loaders vs frugalml.load().encode",
        "tolerance": TOLERANCE,
        "texts": 64,
        "batch_size": 1,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "ecosystem_versions": other["versions"],
        "checks": checks,
        "all_ok": all(c["ok"] for c in checks),
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
