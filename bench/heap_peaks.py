#!/usr/bin/env python3
"""Group a heaptrack peak (heaptrack_print -F FILE --flamegraph-cost-type peak: one line per
stack, frames root first, separated by ';', then the bytes live at the peak) by what holds the
memory: the client (application) side or the partner side of the gateway, and within each the
kind (hyper's read and write buffers, hyper's request channel, certgate's own partner-side
buffers, TLS state, tasks and futures).
Used by bench/heap.sh; prints a Markdown table."""

import collections
import re
import sys

PARTNER = ("upstream::pool", "upstream::h1", "hyper::client", "upstream::Connector", "rustls_engine", "openssl_engine")
CLIENT = ("certgate::gateway", "hyper::server")
KINDS = (
    ("certgate's read buffer (while a response is read)", ("h1::Conn::poll_fill",)),
    ("certgate's request head (while it is written)", ("h1::encode_head",)),
    ("hyper read buffer", ("poll_read_from_io",)),
    ("hyper write buffer", ("WriteBuf",)),
    ("hyper request channel (tokio mpsc blocks)", ("hyper::client::dispatch", "tokio::sync::mpsc")),
    ("TLS state (rustls, aws-lc)", ("rustls", "aws_lc")),
    ("socket registration", ("tokio::runtime::io",)),
    ("tasks and futures", ("tokio::runtime::task", "box_new_uninit", "boxed")),
)


def owner(frames):
    stack = ";".join(frames)
    if "metrics_util" in stack or "metrics_exporter" in stack:
        return "metrics: request-duration samples until the next upkeep"
    side = None
    if any(p in stack for p in PARTNER):
        side = "partner connections"
    elif any(c in stack for c in CLIENT):
        side = "client connections"
    if side is None:
        return "other"
    for kind, marks in KINDS:
        if any(m in stack for m in marks):
            return f"{side}: {kind}"
    return f"{side}: other"


def short(frame):
    return re.sub(r"::h[0-9a-f]{16}.*", "", frame)[:90]


def main(path):
    groups = collections.Counter()
    other = collections.Counter()
    total = 0
    for line in open(path, encoding="utf-8", errors="replace"):
        stack, _, cost = line.rstrip("\n").rpartition(" ")
        if not cost.isdigit():
            continue
        n = int(cost)
        frames = stack.split(";")
        total += n
        g = owner(frames)
        groups[g] += n
        if g.endswith("other"):
            named = [short(f) for f in frames if "::" in f and not f.startswith(("alloc::", "core::", "std::", "_R"))]
            other[" <- ".join(reversed(named[-3:]))] += n
    print(f"live heap at the peak: {total / 2**20:.1f} MiB\n")
    print("| held by | MiB | share |")
    print("|---|--:|--:|")
    for g, n in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {n / 2**20:.2f} | {100 * n / total:.0f} % |")
    print("\nlargest stacks in the 'other' groups:")
    for s, n in other.most_common(8):
        print(f"  {n / 2**20:6.2f} MiB  {s}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: heap_peaks.py PEAK_STACKS")
    main(sys.argv[1])
