"""``python -m sandman_asgi`` runs the same command as ``sandman``."""

from sandman_asgi.main import main

if __name__ == "__main__":
    main()
