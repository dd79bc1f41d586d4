"""The consumer side: other repositories pin published environments (envrepo.lock), check and
update their pins, resolve them to images by digest, and download an environment's folder."""
