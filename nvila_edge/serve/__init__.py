"""``nvila-edge serve``: the model as a local service (OpenAI-compatible chat, live streams with scheduled
prompts and debounced alerts, an events stream, Prometheus metrics) on Starlette + uvicorn.

One model instance answers everything from one worker thread (``worker``): chat requests first, then stream
prompts and alerts round-robin across streams (``scheduler``). The HTTP layer never touches the model.
"""
