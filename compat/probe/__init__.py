"""The probe apps the server under test runs (``compat.probe.app:app``).

Standard library only: the server may run them under another interpreter or virtualenv.
"""
