"""Models as versioned artifacts in the registry: a file or folder (or a run's outputs) made
into one OCI artifact, its versions the registry's `v<N>` tags, read back hash-checked."""
