"""``python -m sandman_asgi`` runs the same command as ``sandman``."""

from sandman_asgi.launch.entry import cli

if __name__ == "__main__":
    cli()
