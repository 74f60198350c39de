#!/usr/bin/env python3
"""Print everything a running Redis holds as canonical JSON lines.

Usage: tools/redis_dump.py --port PORT [--password PW]

This is the reference side of keeper's interoperability tests: `keeper inspect --format json`
prints the same format, and tests compare the two after canonicalisation
(tests/support/mod.rs `canonical`). Standard library only, so it runs on a bare CI image.

Output, in this order:
  {"function":CODE}                      one per function library, sorted by code
  {"db":0,"key":K,"type":T,"expire_at_ms":N|null,"value":V}
                                         one per key, sorted by (db, key bytes)

A byte string is a JSON string when it is valid UTF-8, else {"base64":"..."} (standard
alphabet, padded). Values per type: string → bytes; list → [bytes] in order; set → [bytes]
sorted by raw bytes; zset → [[member, score]] sorted by (score, member bytes), scores as JSON
numbers or "inf"/"-inf"; hash → {field: value} with sorted keys when every field is UTF-8,
else [[field, value]] sorted by field bytes; stream → see stream_value(). Keys of a type we
cannot read (modules) print type "module" and value null, with a warning on stderr.

Byte stability: json.dumps(..., ensure_ascii=False, separators=(",", ":")), so non-ASCII
text is written as raw UTF-8 (like serde_json) and the same dataset always prints the same
bytes. Object keys keep the order above; hash objects are built in sorted order.
"""

import argparse
import base64
import json
import math
import socket
import sys


class RespError(Exception):
    """An error reply (-ERR ...) from the server."""


class Client:
    """A minimal, binary-safe RESP2 client: send a command, read one reply."""

    def __init__(self, port, host="127.0.0.1", timeout=60.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        self.rfile.close()
        self.sock.close()

    def send(self, *args):
        """Send one command without reading its reply (for pipelining)."""
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def read(self):
        """Read one reply; bulk strings are bytes, nil is None, errors raise RespError."""
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed by server")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError("unexpected RESP reply: %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()


def enc(b):
    """A byte string as JSON: text if valid UTF-8, else {"base64": ...}."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode("ascii")}


def score(text):
    """A Redis score reply as JSON: a number, or "inf"/"-inf"."""
    f = float(text)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def id_key(stream_id):
    """Numeric sort key of a stream ID given as b"ms-seq"."""
    ms, seq = stream_id.split(b"-")
    return (int(ms), int(seq))


def pairs_to_dict(flat):
    """[k1, v1, k2, v2, ...] (keys are simple strings) → {k1: v1, ...}."""
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def hash_value(flat):
    pairs = sorted((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
    try:
        return {f.decode("utf-8"): enc(v) for f, v in pairs}
    except UnicodeDecodeError:
        return [[enc(f), enc(v)] for f, v in pairs]


def stream_value(c, key):
    info = pairs_to_dict(c.call("XINFO", "STREAM", key, "FULL", "COUNT", "0"))
    groups = []
    for g in sorted((pairs_to_dict(x) for x in info["groups"]), key=lambda x: x["name"]):
        pending = sorted(g["pending"], key=lambda p: id_key(p[0]))
        consumers = []
        for cons in sorted((pairs_to_dict(x) for x in g["consumers"]), key=lambda x: x["name"]):
            seen = int(cons["seen-time"])
            consumers.append({
                "name": enc(cons["name"]),
                "seen_time_ms": seen,
                # Redis 7.0 has no active-time; RDB < 11 readers set it to the seen time.
                "active_time_ms": int(cons.get("active-time", seen)),
                "pending": [p[0].decode() for p in sorted(cons["pending"], key=lambda p: id_key(p[0]))],
            })
        groups.append({
            "name": enc(g["name"]),
            "last_id": g["last-delivered-id"].decode(),
            "entries_read": g["entries-read"],  # int, or None for nil
            "pending": [
                {"id": p[0].decode(), "consumer": enc(p[1]), "delivery_time_ms": int(p[2]),
                 "delivery_count": int(p[3])}
                for p in pending
            ],
            "consumers": consumers,
        })
    entries = [
        {"id": e[0].decode(),
         "fields": [[enc(e[1][i]), enc(e[1][i + 1])] for i in range(0, len(e[1]), 2)]}
        for e in info["entries"]
    ]
    return {
        "entries": entries,
        "length": info["length"],
        "last_id": info["last-generated-id"].decode(),
        "first_id": info["recorded-first-entry-id"].decode(),
        "max_deleted_id": info["max-deleted-entry-id"].decode(),
        "entries_added": info["entries-added"],
        "groups": groups,
    }


def key_value(c, typ, key):
    if typ == "string":
        return c.call("GET", key)
    if typ == "list":
        return [enc(x) for x in c.call("LRANGE", key, 0, -1)]
    if typ == "set":
        return [enc(x) for x in sorted(c.call("SMEMBERS", key))]
    if typ == "zset":
        flat = c.call("ZRANGE", key, 0, -1, "WITHSCORES")
        pairs = sorted(((float(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2)))
        return [[enc(m), score(s)] for s, m in pairs]
    if typ == "hash":
        return hash_value(c.call("HGETALL", key))
    if typ == "stream":
        return stream_value(c, key)
    return None


def dump(port, password=None, out=sys.stdout):
    """Write the dataset of the Redis on 127.0.0.1:port to `out` as JSON lines."""
    c = Client(port)
    try:
        if password:
            c.call("AUTH", password)

        def line(obj):
            out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

        codes = []
        try:
            libraries = c.call("FUNCTION", "LIST", "WITHCODE")
        except RespError as e:
            # keeper server has no FUNCTION command (it keeps no function libraries).
            if "unknown command" not in str(e):
                raise
            libraries = []
        for lib in libraries:
            codes.append(pairs_to_dict(lib)["library_code"])
        for code in sorted(codes):
            line({"function": enc(code)})

        databases = int(c.call("CONFIG", "GET", "databases")[1])
        for db in range(databases):
            c.call("SELECT", db)
            keys, cursor = set(), b"0"
            while True:  # SCAN may return a key twice; the set removes repeats
                cursor, batch = c.call("SCAN", cursor, "COUNT", 1000)
                keys.update(batch)
                if cursor == b"0":
                    break
            for key in sorted(keys):
                typ = c.call("TYPE", key).decode()
                if typ == "none":
                    continue  # expired or deleted since SCAN
                value = key_value(c, typ, key)
                if typ == "string":
                    value = enc(value)
                elif typ not in ("list", "set", "zset", "hash", "stream"):
                    print("redis_dump: key %r in db %d has type %s; value not dumped"
                          % (key, db, typ), file=sys.stderr)
                    typ = "module"
                expire = c.call("PEXPIRETIME", key)
                line({"db": db, "key": enc(key), "type": typ,
                      "expire_at_ms": None if expire < 0 else expire, "value": value})
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--password")
    args = p.parse_args()
    dump(args.port, args.password)


if __name__ == "__main__":
    main()
