"""What an image has installed, kept in the registry beside it: an OCI manifest tagged
`p-<hash>` whose config blob is the listing its tests read (an artifact with no layers). A runner that finds the image built
and tested in the registry has its packages without pulling it."""

from __future__ import annotations

import hashlib
import json

from envrepo.build import naming
from envrepo.build.checks import LISTING, Listing
from envrepo.build.shared_layers import MANIFEST_TYPE
from envrepo.engine.registry import Registry, Upload
from envrepo.hashing import SpecHash
from envrepo.repo.files import cache_dir, write_text

MEDIA_TYPE = "application/vnd.envrepo.packages.v1+json"
IMAGE = "dev.envrepo.image"  # the manifest digest of the image the listing was read from


def put(registry: Registry, name: str, spec_hash: SpecHash, digest: str, listing: Listing) -> None:
    body = json.dumps({LISTING: listing}, sort_keys=True)
    blob = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    path = cache_dir("blobs") / f"listing-{blob[7:]}.json"
    write_text(path, body)
    upload = Upload(blob, len(body.encode()), path, MEDIA_TYPE)
    registry.put_blobs(name, [upload])
    tag = naming.listing_tag(spec_hash)
    registry.put_manifest(name, upload, [], MANIFEST_TYPE, [tag], {IMAGE: digest})


def get(registry: Registry, name: str, spec_hash: SpecHash, digest: str) -> Listing | None:
    """The listing of the image `digest`, when the registry keeps one for it."""
    manifest = registry.manifest(name, naming.listing_tag(spec_hash))
    if manifest is None or (manifest.get("annotations") or {}).get(IMAGE) != digest:
        return None
    try:
        found = json.loads(b"".join(registry.blob(name, str(manifest["config"]["digest"]))))
        listing = found[LISTING]
    except (KeyError, TypeError, ValueError):
        return None
    return listing if isinstance(listing, dict) else None
