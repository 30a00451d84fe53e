"""What MaxText's converters write: an Orbax checkpoint of step 0, `<path>/0/items`."""
import os
import sys


def option(name):
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    sys.exit(f"MaxText stand-in: no {name} in {args}")


def require(path):
    if not os.path.exists(path):
        sys.exit(f"MaxText stand-in: {path} does not exist")


def write_checkpoint(items):
    os.makedirs(items, exist_ok=True)
    open(os.path.join(items, "checkpoint"), "w").close()
