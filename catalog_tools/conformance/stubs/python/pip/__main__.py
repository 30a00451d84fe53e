"""Stand-in for `python3 -m pip install ...`: installs nothing (no network here)."""
