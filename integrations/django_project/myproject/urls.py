from django.urls import path

from myproject import views

urlpatterns = [
    path("", views.index),
    path("api/ping", views.ping),
    path("api/echo", views.echo),
]
