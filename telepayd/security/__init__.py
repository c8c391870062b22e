"""The security core: standard library only, so it can be audited (and vendored) on its own.

A test enforces that nothing here imports a third-party package; the aiohttp glue lives in
``telepayd.middlewares`` and only adapts requests to these functions.
"""
