"""Where carbon keeps a metric's whisper file, as a pure function of the (normalised) name.

* untagged: every ``.`` becomes ``/``, leading ``/`` removed, ``.wsp`` appended
  (``a.b.c`` → ``a/b/c.wsp``; ``/`` inside a name nests directories, nothing is sanitised);
* tagged (contains ``;``): ``h = sha256(name)``; hashed names →
  ``_tagged/h[0:3]/h[3:6]/h.wsp``; unhashed → ``_tagged/h[0:3]/h[3:6]/<name, . → _DOT_>.wsp``.
"""

from __future__ import annotations

import hashlib
import os


def relative_path(name: str, tag_hash_filenames: bool = True) -> str:
    """Path of ``name``'s file relative to the data directory."""
    if ";" in name:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        leaf = digest if tag_hash_filenames else name.replace(".", "_DOT_")
        return f"_tagged/{digest[0:3]}/{digest[3:6]}/{leaf}.wsp"
    return name.replace(".", "/").lstrip("/") + ".wsp"


def path_for(data_dir: str, name: str, tag_hash_filenames: bool = True) -> str:
    """Absolute file path of ``name`` under ``data_dir`` (carbon's ``os.path.join`` rules)."""
    return os.path.join(data_dir, relative_path(name, tag_hash_filenames))


__all__ = ["path_for", "relative_path"]
