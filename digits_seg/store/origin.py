"""Where a store entry's files may be fetched from (server-side request forgery guard).

A manifest names its files' URLs, so a hostile or compromised store could make the
worker fetch internal addresses (`http://127.0.0.1:…/secret`) and offer the answer for
download. Two rules, checked before any byte is fetched:

1. A file without a published checksum must come from the store's own origin (scheme,
   host, port). A file elsewhere must carry one (sha256 preferred; sha1/md5 from older
   stores are accepted): its content is then fixed in advance, so nothing unknown can
   be read through it.
2. A file on a loopback, private, link-local or reserved address is refused unless the
   store itself is on that host.

The bundled store (`model_store/`, shipped with the code and reviewed like it) is exempt
from rule 1: its FCN entries name the authors' weights, for which no checksum is published,
and would otherwise show an Import button that always fails. Rule 2 still applies to it.
"""

import ipaddress
import socket
import urllib.parse

from ..errors import ValidationError
from .index import bundled_store, is_http, normalize_store_url


def origin(url):
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def is_internal_host(host):
    """True when `host` (a name or an address) resolves to any loopback/private/link-local/reserved address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False  # unresolvable: the download fails on its own with a clear message
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.is_loopback or address.is_private or address.is_link_local or address.is_reserved \
                or address.is_unspecified or address.is_multicast:
            return True
    return False


def check_file_origin(store, entry_name, file):
    """Raise ValidationError when `file` (a manifest file dict with `location`) may not be fetched for `store`."""
    location = file["location"]
    if not is_http(location):
        return
    checked = bool(file.get("sha256") or any((file.get("other_hashes") or {}).values()))
    store_origin = origin(store) if is_http(store) else None
    file_origin = origin(location)
    trusted = not is_http(store) and normalize_store_url(store) == normalize_store_url(bundled_store())
    if not checked and file_origin != store_origin and not trusted:
        raise ValidationError("store entry %s: file %s comes from %s://%s:%d, not from the store itself, and has no "
                              "checksum; refusing to fetch it. The store must publish its sha256 in manifest.json"
                              % (entry_name, file["name"], file_origin[0], file_origin[1], file_origin[2]))
    same_host = store_origin is not None and store_origin[1] == file_origin[1]
    if not same_host and is_internal_host(file_origin[1]):
        raise ValidationError("store entry %s: file %s is on an internal address (%s); a store may point only at "
                              "public addresses or at its own host" % (entry_name, file["name"], file_origin[1]))
