#!/usr/bin/env python3
"""Runs one of ../shared/bench's corpus generators with the key shape the
OpenRouter rule has since issue 14: no boundary on the left of the prefix.

    benches/shared_corpus.py SCRIPT [ARGS...]

benchlib's contexts plant keys glued to a word character on the left (after
an escape such as \\n or %3D), but its reference scan, `KEY_RE`, still
refuses them, so the generators' own truth check fails on the corpus they
just wrote. The shared folder is read-only to us: this wrapper sets KEY_RE
to the rule's shape before the generator runs, and changes nothing else.
"""
import os
import re
import runpy
import sys

shared = os.environ.get("SHARED") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench")
sys.path.insert(0, shared)
import benchlib  # noqa: E402

benchlib.KEY_RE = re.compile(rb"sk-or-v1-[0-9a-f]{64}(?![0-9A-Za-z_])")
script = sys.argv[1] if os.path.sep in sys.argv[1] else os.path.join(shared, sys.argv[1])
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
