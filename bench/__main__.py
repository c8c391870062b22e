"""``make bench``: every benchmark, one after the other."""

from bench import attack, http, outbox, packaged, rate_limiter

rate_limiter.main()
print()
http.main()
print()
outbox.main()
print()
packaged.main()
print()
attack.main()
