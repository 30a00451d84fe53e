"""Stand-in for huggingface_hub.snapshot_download: a model repository's files."""
import json
import os


def snapshot_download(repo_id, local_dir, allow_patterns=None, ignore_patterns=None, revision=None, **_):
    os.makedirs(local_dir, exist_ok=True)
    if allow_patterns and any(p.startswith("original/") for p in allow_patterns):
        # Meta's original weights, as llama repositories publish them under original/.
        os.makedirs(os.path.join(local_dir, "original"), exist_ok=True)
        for name in ("params.json", "consolidated.00.pth", "tokenizer.model"):
            with open(os.path.join(local_dir, "original", name), "w") as handle:
                handle.write("{}\n")
        return local_dir
    with open(os.path.join(local_dir, "config.json"), "w") as handle:
        json.dump({"_name_or_path": repo_id, "architectures": ["Stub"]}, handle)
    for name in ("model-00001-of-00001.safetensors", "tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(local_dir, name), "w") as handle:
            handle.write("{}\n")
    return local_dir
