"""ASGI entry point: ``sandman myproject.asgi:application`` (as with ``uvicorn``).

Static files under ``/static/`` are served by Django's ``ASGIStaticFilesHandler`` so the
example is complete in one process; a production deployment usually puts them behind
WhiteNoise or a CDN after ``manage.py collectstatic``.
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

application = ASGIStaticFilesHandler(get_asgi_application())
