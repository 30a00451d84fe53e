"""Stand-in: load_parameters_path=... -> <base_output_directory>/<run_name>/checkpoints/0/items
(MaxText's checkpoint manager writes <base_output_directory>/<run_name>/checkpoints/<step>)."""
import os
import sys

from _layout import require, write_checkpoint

config = dict(arg.split("=", 1) for arg in sys.argv[2:] if "=" in arg)
require(config["load_parameters_path"])
write_checkpoint(os.path.join(config["base_output_directory"], config["run_name"], "checkpoints", "0", "items"))
