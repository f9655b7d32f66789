"""Only the admin: it is where executions, their steps and failures are shown."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
