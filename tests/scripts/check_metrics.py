#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Parses a Prometheus text exposition with the official Python client's
parser and checks sample values.

Usage: check_metrics.py FILE [NAME{label="v",...}=VALUE | NAME{...}>=VALUE ...]

Every sample must parse (prometheus_client.parser.text_string_to_metric_
families); histograms must have cumulative buckets ending in +Inf equal to
_count. Each expectation names one sample by name and its exact label set.
Prints "OK n" with the number of samples; exits 1 naming what is wrong.
"""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

EXPECT = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?(=|>=)([0-9.e+-]+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def fail(msg):
    print("check_metrics: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    samples = {}
    for fam in text_string_to_metric_families(text):
        buckets = []
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in samples:
                fail("duplicate sample %s %s" % key)
            samples[key] = s.value
            if fam.type == "histogram" and s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
        if fam.type == "histogram":
            if not buckets or buckets[-1][0] != float("inf"):
                fail("%s: no +Inf bucket" % fam.name)
            if any(b[1] > a[1] for b, a in zip(buckets, buckets[1:])):
                fail("%s: buckets are not cumulative" % fam.name)
            if samples.get((fam.name + "_count", ())) != buckets[-1][1]:
                fail("%s: _count differs from the +Inf bucket" % fam.name)
    for e in sys.argv[2:]:
        m = EXPECT.match(e)
        if not m:
            fail("bad expectation " + e)
        labels = {}
        for k, v in LABEL.findall(m.group(2) or ""):
            labels[k] = re.sub(r'\\(.)', lambda x: {'n': '\n'}.get(x.group(1), x.group(1)), v)
        key = (m.group(1), tuple(sorted(labels.items())))
        if key not in samples:
            fail("no sample %s" % e)
        got, want = samples[key], float(m.group(4))
        if (m.group(3) == "=" and got != want) or (m.group(3) == ">=" and got < want):
            fail("%s: got %s" % (e, got))
    print("OK", len(samples))


main()
