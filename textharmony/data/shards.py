"""Reading webdataset shards: shard lists (brace patterns, globs, directories), the seeded shuffle buffer, and
the tar reader that groups members into raw samples with exact bad-sample accounting (used by :mod:`.loader`)."""
from __future__ import annotations

import glob
import os
import random
import re
from typing import Iterator


def expand_urls(spec) -> list[str]:
    """Brace patterns, globs, directories (all ``*.tar``) or a list of those -> sorted shard list."""
    import braceexpand
    out: list[str] = []
    for s in (spec if isinstance(spec, list) else [spec]):
        s = os.path.expanduser(str(s))
        if os.path.isdir(s):
            out += sorted(glob.glob(os.path.join(s, "*.tar")))
            continue
        for u in braceexpand.braceexpand(s):
            if any(c in u for c in "*?[") and "://" not in u:
                out += sorted(glob.glob(u))
            else:
                out.append(u)
    return out


def shuffled(it: Iterator, bufsize: int, rng: random.Random) -> Iterator:
    """Deterministic buffer shuffle (like ``wds.shuffle``) driven by ``rng``."""
    buf: list = []
    for x in it:
        if len(buf) < bufsize:
            buf.append(x)
            continue
        k = rng.randrange(bufsize)
        buf[k], x = x, buf[k]
        yield x
    rng.shuffle(buf)
    yield from buf


class _CutMember(Exception):
    """A member's data could not be read (truncated / corrupt shard); ``key`` is the sample it belongs to."""

    def __init__(self, key: str, exn: BaseException):
        super().__init__(*exn.args)
        self.key, self.exn = key, exn


_META_RE = re.compile(r"__[^/]*__($|/)")


def tar_samples(urls: list[str], handler) -> Iterator[dict]:
    """Raw samples ``{"__key__", "__url__", "<suffix>": bytes}`` of the tar shards ``urls``, in order.

    Members are grouped by key as webdataset's ``tarfile_to_samples`` does (``gopen`` opens the shards, so
    local paths and URLs work alike), with these differences: a damaged shard is ``handler``-ed once (webdataset
    reports a truncated member twice) and the rest of that shard is not read; a sample whose member could
    not be read is dropped (webdataset yields it without that member), while the complete sample before it
    is kept; a sample with a duplicated member is ``handler``-ed once (``duplicate_file``) and dropped
    (webdataset reports it, then yields it with the first copy)."""
    import tarfile

    from webdataset.gopen import gopen
    from webdataset.tariterators import base_plus_ext, valid_sample
    for url in urls:
        try:
            stream = gopen(url)
        except Exception as e:  # noqa: BLE001 - missing / unreadable shard: counted, next shard
            e.args = e.args + (url,)
            if handler(e):
                continue
            raise
        cur = None
        try:
            try:
                tf = tarfile.open(fileobj=stream, mode="r|*")
                for info in tf:
                    fname = info.name
                    if not info.isreg() or _META_RE.match(fname):
                        continue
                    key, suffix = base_plus_ext(fname)
                    if key is None:
                        continue
                    try:
                        data = tf.extractfile(info).read()
                    except Exception as e:  # noqa: BLE001 - tarfile.ReadError, EOFError, OSError, zlib ...
                        raise _CutMember(key, e) from None
                    tf.members = []                   # streaming: keep no member list
                    suffix = suffix.lower()
                    if cur is None or key != cur["__key__"]:
                        if valid_sample(cur):
                            yield cur
                        cur = {"__key__": key, "__url__": url}
                    if suffix in cur:
                        if not cur.get("__bad__"):
                            exn = ValueError(f"{fname}: duplicate file name in tar file {url}")
                            if not handler(exn):
                                raise exn
                        cur["__bad__"] = True         # valid_sample() refuses it: neither copy is used
                        continue
                    cur[suffix] = data
            except Exception as e:  # noqa: BLE001 - a damaged shard: counted once, the rest of it skipped
                exn = e.exn if isinstance(e, _CutMember) else e
                if not isinstance(e, _CutMember) or (cur is not None and cur["__key__"] == e.key):
                    cur = None                        # it lost a member (or may have): never used
                exn.args = exn.args + (url,)
                if not handler(exn):
                    raise exn from None
            if valid_sample(cur):
                yield cur
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
