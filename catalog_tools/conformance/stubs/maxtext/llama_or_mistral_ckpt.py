"""Stand-in: --base-model-path (Meta's original/ weights) -> --maxtext-model-path/0/items."""
import os

from _layout import option, require, write_checkpoint

require(os.path.join(option("--base-model-path"), "params.json"))
write_checkpoint(os.path.join(option("--maxtext-model-path"), "0", "items"))
