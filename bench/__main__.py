"""``make bench``: every benchmark, one after the other; exits 1 when a target was missed."""

import sys

from bench import attack, http, languages, metrics, outbox, packaged, rate_limiter, scale
from bench.targets import MISSED

for benchmark in (rate_limiter, http, metrics, outbox, packaged, attack, languages, scale):
    benchmark.main()
    print()
if MISSED:
    print("MISSED:", "; ".join(MISSED))
    sys.exit(1)
print("every target met")
