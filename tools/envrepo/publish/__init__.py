"""Publishing: build records merged into a versioned, sharded index (JSON for machines,
static HTML for people), its SBOMs and package diffs, and reading it back."""
