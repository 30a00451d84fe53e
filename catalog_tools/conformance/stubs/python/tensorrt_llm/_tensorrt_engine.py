"""Stand-in for the LLM API's TensorRT-engine LLM: save() writes an engine directory."""
import json
import os


class LLM:
    def __init__(self, model, tensor_parallel_size=1, build_config=None):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise SystemExit(f"tensorrt_llm stand-in: no Hugging Face checkpoint at {model}")
        self.ranks = tensor_parallel_size

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as handle:
            json.dump({"pretrained_config": {"mapping": {"tp_size": self.ranks}}}, handle)
        for rank in range(self.ranks):
            open(os.path.join(directory, f"rank{rank}.engine"), "w").close()

    def shutdown(self):
        pass
