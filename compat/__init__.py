"""compat: a black-box ASGI server conformance suite.

It starts an ASGI server as a subprocess, talks to it only over sockets, and reports which
rules of the ASGI specs (asgiref ``specs/asgi.rst``, ``www.rst``, ``lifespan.rst``,
``extensions.rst``) the server keeps. Run ``python -m compat --help``.

This module stays import-free: the probe apps live in ``compat.probe`` and are imported by
the server under test, possibly from another interpreter.
"""
