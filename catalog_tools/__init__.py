"""Developer tools of the catalog (not in the function image): render, validate,
generate catalog.md and components, copy a model, benchmark."""
