"""Real-HTTP fake servers (Forge / A1111, OpenAI-compatible) for tests and demos.

They listen on 127.0.0.1 only. Nothing here is imported by the product at run
time except the ``fake-forge`` demo command.
"""
