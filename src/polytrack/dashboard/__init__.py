"""The dashboard (`polytrack ui`, `polytrack.ui()`): runs, curves, comparisons and lineage
in a browser, served from the store by an ASGI app over the public read API.

`app.py` builds the Starlette app, `api.py` answers its JSON endpoints, `downsample.py`
thins long series for charts, `security.py` holds the token and header rules, and
`server.py` runs uvicorn on a thread a `Dashboard` handle owns. The built front-end is
in `static/` (rebuilt by scripts/build-dashboard). See docs/dashboard.md.

Nothing here is imported by `import polytrack`: Starlette and uvicorn load on first use.
"""

__all__ = ["api", "app", "downsample", "security", "server"]
