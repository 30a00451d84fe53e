"""serving-catalog KRM functions: one image, one dispatcher, a function per config kind."""

__version__ = "0.1.0"
API_VERSION = "fn.serving-catalog.dev/v1alpha1"
