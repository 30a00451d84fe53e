"""Stand-in: --base_model_path (Kaggle's checkpoint) -> --maxtext_model_path/0/items."""
import os

from _layout import option, require, write_checkpoint

require(option("--base_model_path"))
write_checkpoint(os.path.join(option("--maxtext_model_path"), "0", "items"))
