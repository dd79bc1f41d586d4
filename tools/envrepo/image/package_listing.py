"""What an image has installed, kept in the registry beside it: an OCI artifact tagged
`p-<hash>` whose one blob is the listing its tests read. A runner that finds the image built
and tested in the registry has its packages without pulling it; a listing of another form
(an older envrepo's) is no listing, so the tests run again and write this one."""

from __future__ import annotations

import hashlib
import json

from envrepo.engine import oci
from envrepo.engine.registry import Registry, Upload
from envrepo.hashing import SpecHash
from envrepo.image import naming
from envrepo.image.checks import LISTING, Listing
from envrepo.image.shared_layers import empty_config
from envrepo.repo.files import cache_dir, write_text

IMAGE = "dev.envrepo.image"  # the manifest digest of the image the listing was read from


def put(registry: Registry, name: str, spec_hash: SpecHash, digest: str, listing: Listing) -> None:
    body = json.dumps({LISTING: listing}, sort_keys=True)
    blob = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    path = cache_dir("blobs") / f"listing-{blob[7:]}.json"
    write_text(path, body)
    upload = Upload(blob, len(body.encode()), path, oci.PACKAGES)
    config = empty_config(registry, name)
    registry.put_blobs(name, [upload])
    tag = naming.listing_tag(spec_hash)
    registry.put_manifest(
        name, config, [upload], oci.OCI_MANIFEST, [tag], {IMAGE: digest}, oci.PACKAGES
    )


def get(registry: Registry, name: str, spec_hash: SpecHash, digest: str) -> Listing | None:
    """The listing of the image `digest`, when the registry keeps one for it."""
    manifest = registry.manifest(name, naming.listing_tag(spec_hash))
    if (
        manifest is None
        or manifest.get("artifactType") != oci.PACKAGES
        or (manifest.get("annotations") or {}).get(IMAGE) != digest
    ):
        return None
    try:
        found = json.loads(b"".join(registry.blob(name, str(manifest["layers"][0]["digest"]))))
        listing = found[LISTING]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return listing if isinstance(listing, dict) else None
